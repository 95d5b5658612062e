// The libwebsockets rival of the edge benchmark: a minimal WebSocket echo
// server on libwebsockets 4.1 (Debian 12), single thread, lws's own event loop.
//
//   ember-lws-echo --port P [--host 127.0.0.1]
//
// Any path upgrades (the protocol is picked as lws picks it when the client
// names none: the first in the list). Each message is echoed with its opcode
// (text or binary), in the usual lws way: the received message is queued in
// the session and written from LWS_CALLBACK_SERVER_WRITEABLE, one lws_write
// per writeable callback. Messages up to 4 KiB; a session queues up to 7 and
// pauses reading (rx flow control) while its queue is full.
#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MSG 4096
#define RING 8

struct msg {
  size_t len;
  int binary;
  unsigned char buf[LWS_PRE + MAX_MSG];
};

struct session {
  struct msg* ring;  // ring[head] is being received into
  unsigned head, tail;
  size_t rx_len;
  int paused;
};

static struct lws_context* context;
static volatile sig_atomic_t interrupted;

static int on_echo(struct lws* wsi, enum lws_callback_reasons reason, void* user, void* in,
                   size_t len) {
  struct session* s = (struct session*)user;
  switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
      s->ring = malloc(RING * sizeof *s->ring);
      if (s->ring == NULL) return -1;
      s->head = s->tail = 0;
      s->rx_len = 0;
      s->paused = 0;
      break;
    case LWS_CALLBACK_CLOSED:
      free(s->ring);
      s->ring = NULL;
      break;
    case LWS_CALLBACK_RECEIVE: {
      struct msg* m = &s->ring[s->head];
      if (s->rx_len + len > MAX_MSG) {
        lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, NULL, 0);
        return -1;
      }
      if (lws_is_first_fragment(wsi)) m->binary = lws_frame_is_binary(wsi);
      memcpy(m->buf + LWS_PRE + s->rx_len, in, len);
      s->rx_len += len;
      if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi) != 0) break;
      m->len = s->rx_len;
      s->rx_len = 0;
      s->head = (s->head + 1) % RING;
      if ((s->head + 1) % RING == s->tail) {  // no free slot to receive into
        lws_rx_flow_control(wsi, 0);
        s->paused = 1;
      }
      lws_callback_on_writable(wsi);
      break;
    }
    case LWS_CALLBACK_SERVER_WRITEABLE: {
      if (s->tail == s->head) break;
      struct msg* m = &s->ring[s->tail];
      int n =
          lws_write(wsi, m->buf + LWS_PRE, m->len, m->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
      if (n < (int)m->len) return -1;
      s->tail = (s->tail + 1) % RING;
      if (s->paused) {
        lws_rx_flow_control(wsi, 1);
        s->paused = 0;
      }
      if (s->tail != s->head) lws_callback_on_writable(wsi);
      break;
    }
    default:
      break;
  }
  return 0;
}

static const struct lws_protocols protocols[] = {
    {"echo", on_echo, sizeof(struct session), MAX_MSG, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void on_signal(int sig) {
  (void)sig;
  interrupted = 1;
  lws_cancel_service(context);
}

int main(int argc, char** argv) {
  const char* host = "127.0.0.1";
  int port = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--port") == 0)
      port = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--host") == 0)
      host = argv[i + 1];
    else
      port = -1;
  }
  if (port <= 0 || argc % 2 == 0) {
    fprintf(stderr, "usage: ember-lws-echo --port P [--host 127.0.0.1]\n");
    return 2;
  }
  lws_set_log_level(LLL_ERR | LLL_WARN, NULL);

  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  info.port = port;
  info.iface = host;
  info.protocols = protocols;
  info.count_threads = 1;
  info.gid = -1;
  info.uid = -1;
  context = lws_create_context(&info);
  if (context == NULL) {
    fprintf(stderr, "ember-lws-echo: lws_create_context failed (port %d)\n", port);
    return 1;
  }
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  int n = 0;
  while (n >= 0 && !interrupted)
    n = lws_service(context, 0);
  lws_context_destroy(context);
  return 0;
}
