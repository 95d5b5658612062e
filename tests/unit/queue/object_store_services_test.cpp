// queue::ObjectStore against the real S3 server (s3rver) of
// scripts/services.sh: streamed upload and download through a bounded
// window, S3's errors named, a reader dropped mid-object.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <random>
#include <string>
#include <thread>

#include "ember/reactor.hpp"
#include "handlers/queue/object_store.hpp"
#include "handlers/queue/sigv4.hpp"

namespace ember::queue {
namespace {

class ObjectStoreServices : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* endpoint = std::getenv("S3_ENDPOINT");
    if (!endpoint || !std::getenv("S3_ACCESS_KEY") || !std::getenv("S3_SECRET_KEY")) {
      if (std::getenv("EMBER_REQUIRE_SERVICES"))
        FAIL() << "EMBER_REQUIRE_SERVICES is set but S3_ENDPOINT/S3_ACCESS_KEY/S3_SECRET_KEY are "
                  "not: source the file `scripts/services.sh env` names";
      GTEST_SKIP() << "no S3 server: run scripts/services.sh start s3 and source its env";
    }
    auto ep = parse_endpoint(endpoint);
    ASSERT_TRUE(ep) << ep.error().message;
    settings_.endpoint = *ep;
    settings_.access_key = std::getenv("S3_ACCESS_KEY");
    settings_.secret_key = std::getenv("S3_SECRET_KEY");
    if (const char* region = std::getenv("S3_REGION")) settings_.region = region;
    settings_.window = 256 * 1024;
    settings_.upload_chunk = 64 * 1024;

    ReactorOptions o;
    o.threads = 1;
    o.handle_signals = false;
    reactor_ = std::make_unique<Reactor>(o);
    thread_ = std::thread([this] { reactor_->run(); });
    on_loop([&] { client_ = std::make_unique<http1::Client>(reactor_->loop(0)); });
    store_ = std::make_unique<ObjectStore>(*client_, settings_);
    dir_ = ::testing::TempDir() + "ember-s3-" + std::to_string(::getpid());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    if (!reactor_) return;
    store_.reset();
    on_loop([&] { client_.reset(); });
    reactor_->stop();
    thread_.join();
    std::filesystem::remove_all(dir_);
  }
  template <class F>
  void on_loop(F fn) {
    std::promise<void> done;
    reactor_->loop(0).post([&](Loop&) {
      fn();
      done.set_value();
    });
    done.get_future().wait();
  }
  std::string write_random_file(const std::string& name, size_t size) {
    std::string path = dir_ + "/" + name;
    std::mt19937_64 rng(size);
    std::string data(size, '\0');
    for (char& c : data)
      c = static_cast<char>(rng());
    std::ofstream(path, std::ios::binary).write(data.data(), static_cast<std::streamsize>(size));
    return path;
  }

  ObjectStoreSettings settings_;
  std::unique_ptr<Reactor> reactor_;
  std::thread thread_;
  std::unique_ptr<http1::Client> client_;
  std::unique_ptr<ObjectStore> store_;
  std::string dir_;
};

TEST_F(ObjectStoreServices, SixteenMiBGoesUpAndComesBackThroughTheWindow) {
  constexpr size_t kSize = 16u << 20;
  std::string path = write_random_file("big", kSize);
  std::string key = "store-test/big-" + std::to_string(::getpid());
  auto sent = store_->upload("ember-in", key, path);
  ASSERT_TRUE(sent) << sent.error().message;
  EXPECT_EQ(*sent, kSize);

  auto reader = store_->open("ember-in", key);
  ASSERT_TRUE(reader) << reader.error().message;
  EXPECT_EQ((*reader)->size(), kSize);
  sigv4::Sha256 got;
  uint64_t total = 0;
  std::vector<uint8_t> buf(100'000);  // not a divisor of anything on purpose
  for (;;) {
    auto n = (*reader)->read(buf);
    ASSERT_TRUE(n) << n.error().message;
    if (*n == 0) break;
    got.update({reinterpret_cast<const char*>(buf.data()), *n});
    total += *n;
  }
  EXPECT_EQ(total, kSize);
  auto want = sigv4::sha256_file(path);
  ASSERT_TRUE(want);
  EXPECT_EQ(got.hex_final(), want->sha256);
  // Never much more than the window waited between the socket and the reader
  // (one read of the socket may overshoot it).
  EXPECT_LE((*reader)->peak_buffered(), settings_.window + 64 * 1024 + 16 * 1024);
}

TEST_F(ObjectStoreServices, EmptyAndSmallObjects) {
  std::string empty = write_random_file("empty", 0);
  ASSERT_TRUE(store_->upload("ember-out", "store-test/empty", empty));
  auto got = store_->get("ember-out", "store-test/empty");
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(*got, "");
  std::string small = dir_ + "/small";
  std::ofstream(small) << "4711\n";
  ASSERT_TRUE(store_->upload("ember-out", "store-test/a key with spaces", small));
  got = store_->get("ember-out", "store-test/a key with spaces");
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(*got, "4711\n");
}

TEST_F(ObjectStoreServices, MissingObjectIsNamedWithS3sCode) {
  auto r = store_->open("ember-in", "store-test/no-such-object");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("GET s3://ember-in/store-test/no-such-object: 404 NoSuchKey"),
            std::string::npos)
      << r.error().message;
}

TEST_F(ObjectStoreServices, WrongSecretIsRefusedWithS3sCode) {
  ObjectStoreSettings bad = settings_;
  bad.secret_key = "not-the-secret";
  ObjectStore store(*client_, bad);
  auto r = store.get("ember-in", "store-test/anything");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("403 SignatureDoesNotMatch"), std::string::npos)
      << r.error().message;
}

TEST_F(ObjectStoreServices, AReaderDroppedMidObjectCancelsAndTheClientGoesOn) {
  std::string path = write_random_file("mid", 8u << 20);
  ASSERT_TRUE(store_->upload("ember-in", "store-test/mid", path));
  {
    auto reader = store_->open("ember-in", "store-test/mid");
    ASSERT_TRUE(reader) << reader.error().message;
    std::vector<uint8_t> buf(4096);
    ASSERT_TRUE((*reader)->read(buf));
  }  // dropped with most of the object unread
  auto again = store_->get("ember-in", "store-test/mid");
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->size(), 8u << 20);
}

TEST_F(ObjectStoreServices, AMissingLocalFileIsNamed) {
  auto r = store_->upload("ember-in", "store-test/x", dir_ + "/does-not-exist");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("PUT s3://ember-in/store-test/x"), std::string::npos);
  EXPECT_NE(r.error().message.find("does-not-exist"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace ember::queue
