// A libwebsockets WebSocket client for the edge tests: connects to
// ws://HOST:PORT/PATH, sends a fixed list of messages (text and binary,
// small and 200 KB), checks that each comes back byte for byte with its own
// opcode, then closes with 1000.
//
// usage: lws_client HOST PORT PATH
// exit status: 0 every echo matched; 1 mismatch, error or timeout; 2 usage.
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { kMessages = 4, kBigSize = 200000 };

struct message {
  unsigned char* data;
  size_t len;
  int binary;
};

static struct message messages[kMessages];
static int sent, received, failed, finished;
static unsigned char* rx;  // the message being reassembled
static size_t rx_len, rx_cap;

static void fail(const char* why) {
  fprintf(stderr, "lws_client: %s\n", why);
  failed = 1;
  finished = 1;
}

static int append_rx(const void* in, size_t len) {
  if (rx_len + len > rx_cap) {
    size_t cap = rx_cap ? rx_cap : 4096;
    while (cap < rx_len + len)
      cap *= 2;
    unsigned char* bigger = realloc(rx, cap);
    if (!bigger) return -1;
    rx = bigger;
    rx_cap = cap;
  }
  memcpy(rx + rx_len, in, len);
  rx_len += len;
  return 0;
}

static int callback(struct lws* wsi, enum lws_callback_reasons reason, void* user, void* in,
                    size_t len) {
  (void)user;
  switch (reason) {
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
      fail(in ? (const char*)in : "connection error");
      break;
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
      lws_callback_on_writable(wsi);
      break;
    case LWS_CALLBACK_CLIENT_WRITEABLE: {
      if (sent == received && sent < kMessages) {
        // One message in flight at a time: the echo is checked before the next.
        struct message* m = &messages[sent];
        unsigned char* buf = malloc(LWS_PRE + m->len);
        if (!buf) {
          fail("out of memory");
          return -1;
        }
        memcpy(buf + LWS_PRE, m->data, m->len);
        int n =
            lws_write(wsi, buf + LWS_PRE, m->len, m->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
        free(buf);
        if (n < (int)m->len) {
          fail("lws_write failed");
          return -1;
        }
        ++sent;
      } else if (received == kMessages) {
        lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, (unsigned char*)"bye", 3);
        return -1;  // sends the Close
      }
      break;
    }
    case LWS_CALLBACK_CLIENT_RECEIVE: {
      if (received >= sent) {
        fail("a message arrived that was not asked for");
        return -1;
      }
      if (append_rx(in, len)) {
        fail("out of memory");
        return -1;
      }
      if (!lws_is_final_fragment(wsi)) break;
      struct message* m = &messages[received];
      int binary = lws_frame_is_binary(wsi) ? 1 : 0;
      if (binary != m->binary || rx_len != m->len || memcmp(rx, m->data, m->len) != 0) {
        fprintf(stderr, "lws_client: message %d came back different (%zu bytes, binary %d)\n",
                received, rx_len, binary);
        fail("echo mismatch");
        return -1;
      }
      rx_len = 0;
      ++received;
      lws_callback_on_writable(wsi);
      break;
    }
    case LWS_CALLBACK_CLIENT_CLOSED:
      if (received != kMessages && !failed) fail("closed before every echo arrived");
      finished = 1;
      break;
    default:
      break;
  }
  return 0;
}

static const struct lws_protocols protocols[] = {
    {"edge-test", callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: lws_client HOST PORT PATH\n");
    return 2;
  }
  static unsigned char small_binary[] = {0, 1, 2, 0xff, 0xfe, 0x80, 0x7f};
  static const char utf8[] = "h\xc3\xa9llo \xe2\x9c\x93";
  messages[0] = (struct message){(unsigned char*)"hello lws", 9, 0};
  messages[1] = (struct message){small_binary, sizeof small_binary, 1};
  messages[2] = (struct message){(unsigned char*)utf8, sizeof utf8 - 1, 0};
  unsigned char* big = malloc(kBigSize);
  if (!big) return 1;
  for (size_t i = 0; i < kBigSize; ++i)
    big[i] = (unsigned char)(i * 31 + 7);
  messages[3] = (struct message){big, kBigSize, 1};

  lws_set_log_level(LLL_ERR | LLL_WARN, NULL);
  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  info.port = CONTEXT_PORT_NO_LISTEN;
  info.protocols = protocols;
  info.gid = -1;
  info.uid = -1;
  struct lws_context* ctx = lws_create_context(&info);
  if (!ctx) {
    fprintf(stderr, "lws_client: cannot create the lws context\n");
    return 1;
  }
  struct lws_client_connect_info ci;
  memset(&ci, 0, sizeof ci);
  ci.context = ctx;
  ci.address = argv[1];
  ci.port = atoi(argv[2]);
  ci.path = argv[3];
  ci.host = argv[1];
  ci.origin = argv[1];
  ci.protocol = NULL;
  ci.ietf_version_or_minus_one = -1;
  if (!lws_client_connect_via_info(&ci)) {
    fprintf(stderr, "lws_client: connect failed\n");
    lws_context_destroy(ctx);
    return 1;
  }
  // The caller's timeout bounds the run; this bounds a wedged service loop.
  for (int turns = 0; !finished && turns < 60000; ++turns)
    lws_service(ctx, 100);
  lws_context_destroy(ctx);
  free(big);
  free(rx);
  if (!finished) fprintf(stderr, "lws_client: gave up waiting\n");
  if (failed || !finished || received != kMessages) return 1;
  printf("lws_client: %d echoes matched\n", received);
  return 0;
}
