// S3 transfers: a worker thread waits on a Transfer that the loop thread
// fills (download) or drains (upload). Both sides meet under one mutex; the
// loop side never blocks, and the window bounds what waits in between.
#include "handlers/queue/object_store.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>

#include "handlers/queue/sigv4.hpp"

namespace ember::queue {
namespace {

constexpr size_t kMaxErrorBody = 4096;

// Runs `fn` on the client's loop; when the loop has stopped, runs it here
// with nullptr so the caller learns about it instead of waiting forever.
void run_on_loop(Loop& loop, std::function<void(Loop*)> fn) {
  struct Job final : MailboxItem {
    std::function<void(Loop*)> fn;
  };
  auto* job = new Job;
  job->fn = std::move(fn);
  job->run = [](MailboxItem* self, Loop* l) {
    auto* j = static_cast<Job*>(self);
    j->fn(l);
    delete j;
  };
  loop.post(job);
}

// "<Code>NoSuchKey</Code>...<Message>The specified key does not exist.</Message>"
std::string xml_field(std::string_view xml, std::string_view tag) {
  std::string open, close;  // appended piecewise: GCC 12 misreads "<" + tag at -O3
  open.append("<").append(tag).append(">");
  close.append("</").append(tag).append(">");
  size_t a = xml.find(open);
  if (a == std::string_view::npos) return {};
  a += open.size();
  size_t b = xml.find(close, a);
  return b == std::string_view::npos ? std::string() : std::string(xml.substr(a, b - a));
}

std::string s3_error(int status, std::string_view body) {
  std::string code = xml_field(body, "Code"), message = xml_field(body, "Message");
  std::string out = std::to_string(status);
  if (!code.empty()) out += " " + code;
  if (!message.empty()) out += ": " + message;
  return out;
}

bool success(int status) {
  return status >= 200 && status < 300;
}

}  // namespace

// Shared by a worker and the loop. The loop side keeps it alive through
// `self` while the client may still call it.
struct Transfer final : http1::ClientHandler {
  std::mutex mu;
  std::condition_variable cv;
  std::string what;  // "GET s3://bucket/key", for messages
  size_t window = 0;

  // Loop thread only.
  http1::RequestHandle handle;
  std::shared_ptr<Transfer> self;

  // Under mu.
  bool head_done = false, finished = false, failed = false;
  int status = 0;
  uint64_t length = 0;
  std::string error;       // set when failed
  std::string error_body;  // a non-2xx answer's body (S3's XML error)
  // Download: body pieces on their way to the reader.
  std::deque<Bytes> chunks;
  size_t front_offset = 0, buffered = 0, peak = 0;
  bool response_paused = false;
  // Upload: file pieces on their way to the socket.
  bool source_done = false, loop_waiting = false;

  // ---- ClientHandler (loop thread) ----
  void on_head(const http1::ResponseHead& head) override {
    std::lock_guard lock(mu);
    status = head.status;
    length = head.content_length.value_or(0);
    head_done = true;
    cv.notify_all();
  }
  http1::Action on_body(const Bytes& chunk) override {
    std::lock_guard lock(mu);
    if (!success(status)) {
      error_body.append(
          chunk.view().substr(0, kMaxErrorBody - std::min(kMaxErrorBody, error_body.size())));
      return http1::Action::proceed;
    }
    chunks.push_back(chunk);  // shares the read buffer's slice: no copy here
    buffered += chunk.size();
    peak = std::max(peak, buffered);
    cv.notify_all();
    if (buffered >= window) {
      response_paused = true;
      return http1::Action::pause;
    }
    return http1::Action::proceed;
  }
  void on_complete() override {
    {
      std::lock_guard lock(mu);
      finished = true;
      if (!success(status)) {
        failed = true;
        error = what + ": " + s3_error(status, error_body);
      }
      cv.notify_all();
    }
    release_self();
  }
  void on_error(const Error& e) override {
    {
      std::lock_guard lock(mu);
      finished = failed = true;
      error = what + ": " + e.message;
      cv.notify_all();
    }
    release_self();
  }

  // The client is done with us; let go next turn, not inside its callback.
  void release_self() {
    if (!self) return;
    run_on_loop(*loop, [keep = std::move(self)](Loop*) {});
  }
  Loop* loop = nullptr;

  void fail_now(std::string message) {
    std::lock_guard lock(mu);
    finished = failed = true;
    error = what + ": " + std::move(message);
    cv.notify_all();
  }
};

// ---- ObjectReader ----

ObjectReader::~ObjectReader() {
  bool running;
  {
    std::lock_guard lock(t_->mu);
    running = !t_->finished;
    t_->chunks.clear();
  }
  if (running)
    run_on_loop(*t_->loop, [t = t_](Loop* l) {
      if (l && t->self) {
        t->handle.cancel();  // no callback follows
        t->self.reset();
      }
    });
}

Result<size_t> ObjectReader::read(std::span<uint8_t> out) {
  Transfer& t = *t_;
  std::unique_lock lock(t.mu);
  t.cv.wait(lock, [&] { return !t.chunks.empty() || t.finished; });
  if (t.chunks.empty()) {
    if (t.failed) return Error(t.error);
    return size_t{0};
  }
  size_t n = 0;
  while (n < out.size() && !t.chunks.empty()) {
    const Bytes& front = t.chunks.front();
    size_t take = std::min(out.size() - n, front.size() - t.front_offset);
    std::memcpy(out.data() + n, front.data() + t.front_offset, take);
    n += take;
    t.front_offset += take;
    if (t.front_offset == front.size()) {
      t.chunks.pop_front();
      t.front_offset = 0;
    }
  }
  t.buffered -= n;
  if (t.response_paused && t.buffered <= t.window / 2) {
    t.response_paused = false;
    run_on_loop(*t.loop, [keep = t_](Loop* l) {
      if (l && keep->self) keep->handle.resume_response();
    });
  }
  return n;
}

size_t ObjectReader::peak_buffered() const noexcept {
  std::lock_guard lock(t_->mu);
  return t_->peak;
}

// ---- ObjectStore ----

namespace {

struct SignedRequest {
  std::string url;
  std::string amz_date, content_sha256, authorization;
  http1::Field fields[3];
};

// Loop thread (the signer caches the day's key).
Result<void> sign(const ObjectStoreSettings& s, sigv4::Signer& signer, std::string_view method,
                  std::string_view bucket, std::string_view key, std::string_view payload_sha256,
                  SignedRequest& out) {
  std::string path = s.endpoint.base_path + "/" + std::string(bucket) + "/" + std::string(key);
  std::string host = s.endpoint.authority();
  sigv4::Request r;
  r.method = method;
  r.host = host;
  r.path = path;
  r.payload_sha256 = payload_sha256;
  r.time = std::chrono::system_clock::now();
  auto signed_ = signer.sign(r);
  if (!signed_) return signed_.error();
  out.url = std::string(s.endpoint.tls ? "https://" : "http://") + host + signed_->canonical_uri;
  if (!signed_->canonical_query.empty()) out.url += "?" + signed_->canonical_query;
  out.amz_date = std::move(signed_->amz_date);
  out.content_sha256 = std::move(signed_->content_sha256);
  out.authorization = std::move(signed_->authorization);
  out.fields[0] = {"x-amz-date", out.amz_date};
  out.fields[1] = {"x-amz-content-sha256", out.content_sha256};
  out.fields[2] = {"authorization", out.authorization};
  return {};
}

std::string object_name(std::string_view method, std::string_view bucket, std::string_view key) {
  return std::string(method) + " s3://" + std::string(bucket) + "/" + std::string(key);
}

}  // namespace

ObjectStore::ObjectStore(http1::Client& client, ObjectStoreSettings settings)
    : client_(client), settings_(std::move(settings)) {}

Result<std::unique_ptr<ObjectReader>> ObjectStore::open(std::string_view bucket,
                                                        std::string_view key) {
  Loop& loop = client_.loop();
  if (loop.on_loop_thread())
    return Error("ObjectStore::open called on a loop thread: call it from a worker");
  auto t = std::make_shared<Transfer>();
  t->what = object_name("GET", bucket, key);
  t->window = std::max<size_t>(settings_.window, 1);
  t->loop = &loop;
  run_on_loop(loop, [this, t, b = std::string(bucket), k = std::string(key)](Loop* l) {
    if (!l) return t->fail_now("the loop has stopped");
    // One signer per call: signing is cheap next to a transfer, and the
    // store then holds no state the loop and workers would share.
    sigv4::Signer signer(settings_.access_key, settings_.secret_key, settings_.region);
    SignedRequest sr;
    if (auto ok = sign(settings_, signer, "GET", b, k, sigv4::kEmptySha256, sr); !ok)
      return t->fail_now(ok.error().message);
    http1::ClientRequest req;
    req.method = "GET";
    req.url = sr.url;
    req.headers = sr.fields;
    auto h = client_.request(std::move(req), *t);
    if (!h) return t->fail_now(h.error().message);
    t->handle = *h;
    t->self = t;
  });
  std::unique_lock lock(t->mu);
  t->cv.wait(lock, [&] { return t->head_done || t->finished; });
  if (t->head_done && !success(t->status))
    t->cv.wait(lock, [&] { return t->finished; });  // the error's body
  if (t->failed) return Error(t->error);
  return std::unique_ptr<ObjectReader>(new ObjectReader(t, t->length));
}

Result<std::string> ObjectStore::get(std::string_view bucket, std::string_view key) {
  auto reader = open(bucket, key);
  if (!reader) return reader.error();
  std::string out;
  out.reserve((*reader)->size());
  uint8_t buf[64 * 1024];
  for (;;) {
    auto n = (*reader)->read(buf);
    if (!n) return n.error();
    if (*n == 0) {
      Result<std::string> done;  // Error converts from std::string: assign the value
      done.value() = std::move(out);
      return done;
    }
    out.append(reinterpret_cast<const char*>(buf), *n);
  }
}

Result<uint64_t> ObjectStore::upload(std::string_view bucket, std::string_view key,
                                     const std::string& path) {
  Loop& loop = client_.loop();
  std::string what = object_name("PUT", bucket, key);
  if (loop.on_loop_thread())
    return Error("ObjectStore::upload called on a loop thread: call it from a worker");
  auto digest = sigv4::sha256_file(path);
  if (!digest) return Error(what + ": " + digest.error().message);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error(what + ": open " + path + ": " + std::strerror(errno));

  auto t = std::make_shared<Transfer>();
  t->what = what;
  t->window = std::max(settings_.window, settings_.upload_chunk);
  t->loop = &loop;
  uint64_t size = digest->size;
  run_on_loop(loop, [this, t, size, sha = digest->sha256, b = std::string(bucket),
                     k = std::string(key)](Loop* l) {
    if (!l) return t->fail_now("the loop has stopped");
    sigv4::Signer signer(settings_.access_key, settings_.secret_key, settings_.region);
    SignedRequest sr;
    if (auto ok = sign(settings_, signer, "PUT", b, k, sha, sr); !ok)
      return t->fail_now(ok.error().message);
    http1::ClientRequest req;
    req.method = "PUT";
    req.url = sr.url;
    req.headers = sr.fields;
    req.source.length = size;
    Transfer* raw = t.get();
    req.source.pull = [raw]() {
      std::lock_guard lock(raw->mu);
      if (!raw->chunks.empty()) {
        Bytes b = std::move(raw->chunks.front());
        raw->chunks.pop_front();
        raw->buffered -= b.size();
        raw->cv.notify_all();
        return http1::BodyChunk::data(std::move(b));
      }
      if (raw->source_done) return http1::BodyChunk::end();
      raw->loop_waiting = true;
      return http1::BodyChunk::wait();
    };
    auto h = client_.request(std::move(req), *t);
    if (!h) return t->fail_now(h.error().message);
    t->handle = *h;
    t->self = t;
  });

  // Second pass: read the file into the window as the socket drains it.
  std::string read_error;
  uint64_t sent = 0;
  for (;;) {
    {
      std::unique_lock lock(t->mu);
      t->cv.wait(lock, [&] { return t->buffered < t->window || t->finished; });
      if (t->finished) break;
    }
    MutableBuffer buf = MutableBuffer::allocate(settings_.upload_chunk);
    ssize_t n;
    do {
      n = ::read(fd, buf.data(), settings_.upload_chunk);
    } while (n < 0 && errno == EINTR);
    if (n < 0) read_error = "read " + path + ": " + std::strerror(errno);
    bool wake;
    {
      std::lock_guard lock(t->mu);
      if (n > 0) {
        t->chunks.push_back(std::move(buf).freeze(static_cast<size_t>(n)));
        t->buffered += static_cast<size_t>(n);
        t->peak = std::max(t->peak, t->buffered);
        sent += static_cast<uint64_t>(n);
      } else {
        t->source_done = true;  // a short file makes the client fail the request
      }
      wake = t->loop_waiting;
      t->loop_waiting = false;
    }
    if (wake)
      run_on_loop(loop, [t](Loop* l) {
        if (l && t->self) t->handle.resume_upload();
      });
    if (n <= 0) break;
  }
  ::close(fd);
  std::unique_lock lock(t->mu);
  t->cv.wait(lock, [&] { return t->finished; });
  if (!read_error.empty()) return Error(what + ": " + read_error);
  if (t->failed) return Error(t->error);
  return sent;
}

}  // namespace ember::queue
