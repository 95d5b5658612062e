// S3 object transfers for worker threads: path-style addressing, SigV4
// (region "garage" by default), carried out by the HTTP/1.1 client of one
// loop. Downloads stream through a bounded window to a blocking reader;
// uploads stream a local file. Memory per transfer stays near `window` bytes
// whatever the object's size, so a 1 GiB object never needs 1 GiB.
//
// Thread: construct, and destroy once no transfer is left, on any thread;
// open()/upload() and ObjectReader run on worker threads, never on the
// client's loop thread (they wait for it). The Client must outlive the store.
// Errors name the object ("GET s3://bucket/key: 404 NoSuchKey: The specified
// key does not exist.") and, for transport failures, the client's message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "ember/error.hpp"
#include "handlers/queue/config.hpp"
#include "protocols/http1/client.hpp"

namespace ember::queue {

struct ObjectStoreSettings {
  HttpEndpoint endpoint;
  std::string access_key;
  std::string secret_key;
  std::string region = "garage";
  // Bytes a transfer may hold between the socket and the worker.
  size_t window = 1u << 20;
  // Pieces a file is read in for an upload.
  size_t upload_chunk = 256 * 1024;
};

struct Transfer;  // object_store.cpp

// A blocking reader of one object, fed by the loop as the body arrives.
class ObjectReader {
 public:
  ~ObjectReader();  // cancels a transfer still running
  ObjectReader(const ObjectReader&) = delete;
  ObjectReader& operator=(const ObjectReader&) = delete;

  // Copies up to out.size() bytes; 0 once the whole object was read. Waits
  // while nothing has arrived. An error (connection lost, timeout) ends it.
  Result<size_t> read(std::span<uint8_t> out);
  // Content-Length of the object.
  uint64_t size() const noexcept { return size_; }
  // Most bytes ever buffered for this reader (bounded by the window plus one
  // read of the socket): for tests and metrics.
  size_t peak_buffered() const noexcept;

 private:
  friend class ObjectStore;
  ObjectReader(std::shared_ptr<Transfer> t, uint64_t size) : t_(std::move(t)), size_(size) {}
  std::shared_ptr<Transfer> t_;
  uint64_t size_ = 0;
};

class ObjectStore {
 public:
  ObjectStore(http1::Client& client, ObjectStoreSettings settings);

  // Starts a GET and returns once the response head is in: a missing object
  // or a refused signature is an error here, not at the first read().
  Result<std::unique_ptr<ObjectReader>> open(std::string_view bucket, std::string_view key);
  // Reads the whole object into a string (small objects, tests).
  Result<std::string> get(std::string_view bucket, std::string_view key);
  // PUTs the file at `path` as s3://bucket/key: hashed in a first pass (the
  // payload hash is signed), then sent while being read a second time.
  // Returns the bytes sent.
  Result<uint64_t> upload(std::string_view bucket, std::string_view key, const std::string& path);

  const ObjectStoreSettings& settings() const noexcept { return settings_; }

 private:
  http1::Client& client_;
  ObjectStoreSettings settings_;
};

}  // namespace ember::queue
