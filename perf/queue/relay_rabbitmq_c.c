// The librabbitmq-c rival of the queue relay benchmark: consume IN with
// basic.qos PREFETCH, parse each body as a decimal u64, publish it to OUT on
// the default exchange, ack the delivery. With --confirms the channel is in
// confirm mode and a delivery is acked only once its publish is confirmed;
// the waits are batched: every delivery already read from the socket is
// published first, then one multiple-ack covers all confirmed ones.
//
//   ember-relay-rabbitmq-c HOST PORT USER PASSWORD IN OUT PREFETCH [--confirms]
//
// Runs until SIGTERM/SIGINT. Exit 1 on a broker or protocol error (the
// reason on stderr), 0 after a signal.
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

static volatile sig_atomic_t stop_requested = 0;
static void on_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

static void die_reply(amqp_rpc_reply_t r, const char* what) {
  if (r.reply_type == AMQP_RESPONSE_NORMAL) return;
  if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION)
    fprintf(stderr, "relay-rabbitmq-c: %s: %s\n", what, amqp_error_string2(r.library_error));
  else
    fprintf(stderr, "relay-rabbitmq-c: %s: broker closed (reply type %d)\n", what,
            (int)r.reply_type);
  exit(1);
}

static void die_status(int status, const char* what) {
  if (status >= 0) return;
  fprintf(stderr, "relay-rabbitmq-c: %s: %s\n", what, amqp_error_string2(status));
  exit(1);
}

static int parse_u64(const amqp_bytes_t b, uint64_t* out) {
  const unsigned char* p = b.bytes;
  if (b.len == 0 || b.len > 20) return 0;
  uint64_t v = 0;
  for (size_t i = 0; i < b.len; ++i) {
    if (p[i] < '0' || p[i] > '9') return 0;
    uint64_t d = (uint64_t)(p[i] - '0');
    if (v > (UINT64_MAX - d) / 10) return 0;
    v = v * 10 + d;
  }
  *out = v;
  return 1;
}

// Publish sequence numbers confirmed out of order are remembered in a ring;
// the watermark is the highest seq with every seq at or below it confirmed.
#define RING 131072u
static unsigned char confirmed_ring[RING];
static uint64_t watermark = 0;  // every seq <= watermark is confirmed
static uint64_t next_seq = 1;   // the seq of the next publish

static void on_confirm(uint64_t tag, int multiple) {
  if (multiple) {
    for (uint64_t s = watermark + 1; s <= tag; ++s)
      confirmed_ring[s % RING] = 1;
  } else {
    confirmed_ring[tag % RING] = 1;
  }
  while (watermark + 1 < next_seq && confirmed_ring[(watermark + 1) % RING]) {
    confirmed_ring[(watermark + 1) % RING] = 0;
    ++watermark;
  }
}

// Deliveries published but not yet acked: (delivery tag, publish seq), FIFO.
static uint64_t pend_tag[RING], pend_seq[RING];
static size_t pend_head = 0, pend_tail = 0;

int main(int argc, char** argv) {
  if (argc < 8) {
    fprintf(stderr, "usage: %s HOST PORT USER PASSWORD IN OUT PREFETCH [--confirms]\n", argv[0]);
    return 2;
  }
  const char* host = argv[1];
  int port = atoi(argv[2]);
  const char* in_q = argv[5];
  const char* out_q = argv[6];
  int prefetch = atoi(argv[7]);
  int confirms = argc > 8 && strcmp(argv[8], "--confirms") == 0;
  if (prefetch < 1 || prefetch > 65535 || (unsigned)prefetch >= RING) {
    fprintf(stderr, "relay-rabbitmq-c: bad prefetch\n");
    return 2;
  }

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  amqp_connection_state_t conn = amqp_new_connection();
  amqp_socket_t* sock = amqp_tcp_socket_new(conn);
  if (!sock) die_status(AMQP_STATUS_NO_MEMORY, "socket");
  die_status(amqp_socket_open(sock, host, port), "connect");
  int one = 1;  // librabbitmq sets it too; be sure (benchmarking.md)
  setsockopt(amqp_socket_get_sockfd(sock), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  die_reply(amqp_login(conn, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, argv[3], argv[4]), "login");
  amqp_channel_open(conn, 1);
  die_reply(amqp_get_rpc_reply(conn), "channel.open");
  // Non-durable, like the reference and Ember's default.
  amqp_queue_declare(conn, 1, amqp_cstring_bytes(in_q), 0, 0, 0, 0, amqp_empty_table);
  die_reply(amqp_get_rpc_reply(conn), "queue.declare in");
  amqp_queue_declare(conn, 1, amqp_cstring_bytes(out_q), 0, 0, 0, 0, amqp_empty_table);
  die_reply(amqp_get_rpc_reply(conn), "queue.declare out");
  if (confirms) {
    amqp_confirm_select(conn, 1);
    die_reply(amqp_get_rpc_reply(conn), "confirm.select");
  }
  amqp_basic_qos(conn, 1, 0, (uint16_t)prefetch, 0);
  die_reply(amqp_get_rpc_reply(conn), "basic.qos");
  amqp_basic_consume(conn, 1, amqp_cstring_bytes(in_q), amqp_empty_bytes, 0, 0, 0,
                     amqp_empty_table);
  die_reply(amqp_get_rpc_reply(conn), "basic.consume");

  amqp_bytes_t out_key = amqp_cstring_bytes(out_q);
  char body[24];
  // A timeout so that a signal is noticed while idle.
  struct timeval tick = {0, 200000};
  while (!stop_requested) {
    amqp_frame_t frame;
    int st = amqp_simple_wait_frame_noblock(conn, &frame, &tick);
    if (st == AMQP_STATUS_TIMEOUT) continue;
    die_status(st, "read");
    if (frame.frame_type != AMQP_FRAME_METHOD) continue;  // heartbeats
    amqp_method_number_t id = frame.payload.method.id;
    if (id == AMQP_BASIC_DELIVER_METHOD) {
      amqp_basic_deliver_t* d = frame.payload.method.decoded;
      uint64_t tag = d->delivery_tag;
      // Content header, then body frames up to body_size.
      die_status(amqp_simple_wait_frame(conn, &frame), "read header");
      if (frame.frame_type != AMQP_FRAME_HEADER) {
        fprintf(stderr, "relay-rabbitmq-c: expected a content header\n");
        return 1;
      }
      size_t size = (size_t)frame.payload.properties.body_size, got = 0;
      size_t blen = 0;
      while (got < size) {
        die_status(amqp_simple_wait_frame(conn, &frame), "read body");
        if (frame.frame_type != AMQP_FRAME_BODY) {
          fprintf(stderr, "relay-rabbitmq-c: expected a body frame\n");
          return 1;
        }
        amqp_bytes_t f = frame.payload.body_fragment;
        if (blen + f.len <= sizeof body) memcpy(body + blen, f.bytes, f.len);
        blen += f.len;
        got += f.len;
      }
      uint64_t v;
      amqp_bytes_t b = {blen <= sizeof body ? blen : 0, body};
      if (!parse_u64(b, &v)) {  // an invalid request: reject without requeue
        amqp_basic_reject(conn, 1, tag, 0);
        continue;
      }
      int n = snprintf(body, sizeof body, "%llu", (unsigned long long)v);
      amqp_bytes_t out = {(size_t)n, body};
      die_status(amqp_basic_publish(conn, 1, amqp_empty_bytes, out_key, 0, 0, NULL, out),
                 "publish");
      if (!confirms) {
        die_status(amqp_basic_ack(conn, 1, tag, 0), "ack");
        continue;
      }
      pend_tag[pend_tail % RING] = tag;
      pend_seq[pend_tail % RING] = next_seq++;
      ++pend_tail;
    } else if (id == AMQP_BASIC_ACK_METHOD) {
      amqp_basic_ack_t* a = frame.payload.method.decoded;
      on_confirm(a->delivery_tag, a->multiple);
    } else if (id == AMQP_BASIC_NACK_METHOD) {
      fprintf(stderr, "relay-rabbitmq-c: the broker nacked a publish\n");
      return 1;
    } else if (id == AMQP_CHANNEL_CLOSE_METHOD || id == AMQP_CONNECTION_CLOSE_METHOD) {
      fprintf(stderr, "relay-rabbitmq-c: the broker closed the channel\n");
      return 1;
    }
    // Batch: ack only when nothing more is already read or buffered, one
    // multiple-ack up to the last delivery whose publish is confirmed.
    if (confirms && pend_head != pend_tail && !amqp_frames_enqueued(conn) &&
        !amqp_data_in_buffer(conn)) {
      uint64_t last = 0;
      while (pend_head != pend_tail && pend_seq[pend_head % RING] <= watermark)
        last = pend_tag[pend_head++ % RING];
      if (last) die_status(amqp_basic_ack(conn, 1, last, 1), "ack");
    }
  }
  amqp_channel_close(conn, 1, AMQP_REPLY_SUCCESS);
  amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(conn);
  return 0;
}
