// The queue relay benchmark's driver (C, librabbitmq): one measured run.
//
//   ember-queue-driver HOST PORT USER PASSWORD IN OUT COUNT [--timeout S] [--base B]
//                      [--broker-pid P] -- RELAY...
//
// 1. Declares IN and OUT (non-durable), purges both, publishes COUNT requests
//    (decimal BASE+i, i < COUNT) to IN with publisher confirms, checks that IN
//    holds COUNT messages.
// 2. Starts RELAY (fork + exec; the runner wraps it in ember-sched), consumes
//    OUT (auto-ack) until every result arrived, checks each one is a request
//    seen for the first time, keeps draining 300 ms for duplicates, then
//    stops RELAY (SIGTERM, SIGKILL after 10 s) and checks IN is empty.
// 3. Prints one line to stdout:
//    RESULT count=N received=N dup=0 bad=0 missing=0 left_in=0
//           wall_s=... steady_s=... cpu_s=... steady_cpu_s=...
//    wall_s: relay start to the last result; steady_s: first to last result
//    (start-up excluded). broker_steady_cpu_s: with --broker-pid, that
//    process's CPU over the steady window (-1 without). cpu_s: the relay's utime+stime (+ reaped
//    children) from /proc/PID/stat at the last result; steady_cpu_s: its increase from the first
//    result to the last.
//
// Exit: 0 all results exactly once; 3 the relay failed (timeout, missing,
// duplicates, wrong bodies, died); 1 a setup error (broker, fork); 2 usage.
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void fail(const char* what, const char* why) {
  fprintf(stderr, "queue-driver: %s: %s\n", what, why);
  exit(1);
}
static void check_reply(amqp_rpc_reply_t r, const char* what) {
  if (r.reply_type == AMQP_RESPONSE_NORMAL) return;
  if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION)
    fail(what, amqp_error_string2(r.library_error));
  fail(what, "the broker closed the channel or connection");
}
static void check_status(int st, const char* what) {
  if (st < 0) fail(what, amqp_error_string2(st));
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

// utime+stime+cutime+cstime of PID in seconds; -1 when it is gone.
static double proc_cpu_s(pid_t pid) {
  char path[64], buf[2048];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE* f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char* p = strrchr(buf, ')');
  if (!p) return -1;
  // After ") ": state(3) ... utime is field 14, so skip 11 fields after state.
  unsigned long long v[4] = {0};
  char state;
  if (sscanf(p + 2, "%c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu", &state, &v[0],
             &v[1], &v[2], &v[3]) != 5)
    return -1;
  return (double)(v[0] + v[1] + v[2] + v[3]) / (double)sysconf(_SC_CLK_TCK);
}

static amqp_connection_state_t connect_broker(const char* host, int port, const char* user,
                                              const char* pass) {
  amqp_connection_state_t c = amqp_new_connection();
  amqp_socket_t* s = amqp_tcp_socket_new(c);
  if (!s) fail("socket", "out of memory");
  check_status(amqp_socket_open(s, host, port), "connect");
  int one = 1;
  setsockopt(amqp_socket_get_sockfd(s), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  check_reply(amqp_login(c, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, user, pass), "login");
  amqp_channel_open(c, 1);
  check_reply(amqp_get_rpc_reply(c), "channel.open");
  return c;
}

static uint32_t queue_depth(amqp_connection_state_t c, const char* q) {
  amqp_queue_declare_ok_t* ok =
      amqp_queue_declare(c, 1, amqp_cstring_bytes(q), 1, 0, 0, 0, amqp_empty_table);
  check_reply(amqp_get_rpc_reply(c), "queue.declare passive");
  return ok->message_count;
}

static pid_t relay_pid = 0;
static void kill_relay(void) {
  if (relay_pid <= 0) return;
  kill(relay_pid, SIGTERM);
  for (int i = 0; i < 1000; ++i) {  // 10 s
    if (waitpid(relay_pid, NULL, WNOHANG) == relay_pid) {
      kill(-relay_pid, SIGKILL);  // leftovers of its own group (ember-sched's setsid)
      relay_pid = 0;
      return;
    }
    usleep(10000);
  }
  fprintf(stderr, "queue-driver: the relay ignored SIGTERM for 10 s; SIGKILL\n");
  kill(-relay_pid, SIGKILL);
  kill(relay_pid, SIGKILL);
  waitpid(relay_pid, NULL, 0);
  relay_pid = 0;
}
static void on_signal(int sig) {
  if (relay_pid > 0) {
    kill(relay_pid, SIGKILL);
    kill(-relay_pid, SIGKILL);
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

int main(int argc, char** argv) {
  int dash = 0;
  for (int i = 1; i < argc; ++i)
    if (strcmp(argv[i], "--") == 0) {
      dash = i;
      break;
    }
  if (dash < 8 || dash + 1 >= argc) {
    fprintf(stderr,
            "usage: %s HOST PORT USER PASSWORD IN OUT COUNT [--timeout S] [--base B] [--broker-pid "
            "P] -- "
            "RELAY...\n",
            argv[0]);
    return 2;
  }
  const char *host = argv[1], *user = argv[3], *pass = argv[4], *in_q = argv[5], *out_q = argv[6];
  int port = atoi(argv[2]);
  long count = atol(argv[7]);
  double timeout = 120;
  uint64_t base = 1000000000000ull;  // 13-digit bodies
  pid_t broker_pid = 0;              // --broker-pid: its CPU over the same window
  for (int i = 8; i + 1 < dash; i += 2) {
    if (strcmp(argv[i], "--timeout") == 0)
      timeout = atof(argv[i + 1]);
    else if (strcmp(argv[i], "--broker-pid") == 0)
      broker_pid = (pid_t)atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--base") == 0)
      base = strtoull(argv[i + 1], NULL, 10);
    else {
      fprintf(stderr, "queue-driver: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (count < 1 || count > 100000000) {
    fprintf(stderr, "queue-driver: bad COUNT\n");
    return 2;
  }
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  signal(SIGPIPE, SIG_IGN);

  // ---- preload --------------------------------------------------------------
  amqp_connection_state_t c = connect_broker(host, port, user, pass);
  for (int k = 0; k < 2; ++k) {
    const char* q = k ? out_q : in_q;
    amqp_queue_declare(c, 1, amqp_cstring_bytes(q), 0, 0, 0, 0, amqp_empty_table);
    check_reply(amqp_get_rpc_reply(c), "queue.declare");
    amqp_queue_purge(c, 1, amqp_cstring_bytes(q));
    check_reply(amqp_get_rpc_reply(c), "queue.purge");
  }
  amqp_confirm_select(c, 1);
  check_reply(amqp_get_rpc_reply(c), "confirm.select");
  uint64_t confirmed = 0;
  char body[32];
  for (long i = 0; i < count; ++i) {
    int n = snprintf(body, sizeof body, "%llu", (unsigned long long)(base + (uint64_t)i));
    amqp_bytes_t b = {(size_t)n, body};
    check_status(
        amqp_basic_publish(c, 1, amqp_empty_bytes, amqp_cstring_bytes(in_q), 0, 0, NULL, b),
        "publish");
    // Collect confirms as they come so the socket never backs up.
    while (amqp_data_in_buffer(c) || amqp_frames_enqueued(c) ||
           (uint64_t)i + 1 - confirmed > 4096) {
      amqp_frame_t f;
      struct timeval zero = {0, 0};
      int st =
          amqp_simple_wait_frame_noblock(c, &f, (uint64_t)i + 1 - confirmed > 4096 ? NULL : &zero);
      if (st == AMQP_STATUS_TIMEOUT) break;
      check_status(st, "preload confirm");
      if (f.frame_type == AMQP_FRAME_METHOD && f.payload.method.id == AMQP_BASIC_ACK_METHOD)
        confirmed = ((amqp_basic_ack_t*)f.payload.method.decoded)->delivery_tag;
      else if (f.frame_type == AMQP_FRAME_METHOD)
        fail("preload", "unexpected method (nack or close)");
    }
  }
  while (confirmed < (uint64_t)count) {
    amqp_frame_t f;
    check_status(amqp_simple_wait_frame(c, &f), "preload confirm");
    if (f.frame_type == AMQP_FRAME_METHOD && f.payload.method.id == AMQP_BASIC_ACK_METHOD)
      confirmed = ((amqp_basic_ack_t*)f.payload.method.decoded)->delivery_tag;
    else if (f.frame_type == AMQP_FRAME_METHOD)
      fail("preload", "unexpected method (nack or close)");
  }
  uint32_t depth = queue_depth(c, in_q);
  if (depth != (uint32_t)count) {
    fprintf(stderr, "queue-driver: %s holds %u messages after the preload, not %ld\n", in_q, depth,
            count);
    return 1;
  }
  amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
  amqp_connection_close(c, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(c);

  // ---- consumer of OUT, then the relay ---------------------------------------
  c = connect_broker(host, port, user, pass);
  amqp_basic_consume(c, 1, amqp_cstring_bytes(out_q), amqp_empty_bytes, 0, 1, 0, amqp_empty_table);
  check_reply(amqp_get_rpc_reply(c), "basic.consume");
  unsigned char* seen = calloc((size_t)count, 1);
  if (!seen) fail("calloc", "out of memory");

  fflush(NULL);
  double t0 = now_s();
  relay_pid = fork();
  if (relay_pid < 0) fail("fork", strerror(errno));
  if (relay_pid == 0) {
    execvp(argv[dash + 1], argv + dash + 1);
    fprintf(stderr, "queue-driver: exec %s: %s\n", argv[dash + 1], strerror(errno));
    _exit(127);
  }

  long received = 0, dup = 0, bad = 0;
  double t_first = 0, t_last = 0, cpu_first = 0, cpu_last = 0, bcpu_first = -1, bcpu_last = -1;
  int relay_died = 0, timed_out = 0;
  double deadline = t0 + timeout, drain_until = 0;
  for (;;) {
    double now = now_s();
    if (received >= count && drain_until == 0) drain_until = now + 0.3;
    if (drain_until && now >= drain_until) break;
    if (now >= deadline) {
      timed_out = 1;
      break;
    }
    if (!relay_died && waitpid(relay_pid, NULL, WNOHANG) == relay_pid) {
      relay_died = 1;
      relay_pid = 0;
      fprintf(stderr, "queue-driver: the relay exited early\n");
      if (received < count) break;
    }
    amqp_envelope_t env;
    struct timeval tv = {0, 100000};
    amqp_maybe_release_buffers(c);
    amqp_rpc_reply_t r = amqp_consume_message(c, &env, &tv, 0);
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT)
      continue;
    check_reply(r, "consume");
    amqp_bytes_t b = env.message.body;
    uint64_t v = 0;
    int ok = b.len > 0 && b.len <= 20;
    for (size_t i = 0; ok && i < b.len; ++i) {
      unsigned char ch = ((unsigned char*)b.bytes)[i];
      if (ch < '0' || ch > '9') ok = 0;
      v = v * 10 + (uint64_t)(ch - '0');
    }
    amqp_destroy_envelope(&env);
    if (!ok || v < base || v - base >= (uint64_t)count) {
      ++bad;
      continue;
    }
    if (seen[v - base]++) {
      ++dup;
      continue;
    }
    ++received;
    if (received == 1) {
      t_first = now_s();
      cpu_first = relay_pid ? proc_cpu_s(relay_pid) : -1;
      if (broker_pid) bcpu_first = proc_cpu_s(broker_pid);
    }
    if (received == count) {
      t_last = now_s();
      cpu_last = relay_pid ? proc_cpu_s(relay_pid) : -1;
      if (broker_pid) bcpu_last = proc_cpu_s(broker_pid);
    }
    if (received % 10000 == 0)
      fprintf(stderr, "queue-driver: %ld/%ld results (%.1f s)\n", received, count, now_s() - t0);
  }
  if (received < count) {  // time and CPU up to the failure, for the report
    t_last = now_s();
    cpu_last = relay_pid ? proc_cpu_s(relay_pid) : -1;
  }
  kill_relay();
  uint32_t left_in = queue_depth(c, in_q);
  amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
  amqp_connection_close(c, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(c);

  printf(
      "RESULT count=%ld received=%ld dup=%ld bad=%ld missing=%ld left_in=%u wall_s=%.6f "
      "steady_s=%.6f cpu_s=%.3f steady_cpu_s=%.3f broker_steady_cpu_s=%.3f timed_out=%d "
      "died=%d\n",
      count, received, dup, bad, count - received, left_in, t_last - t0,
      received > 1 ? t_last - t_first : 0.0, cpu_last,
      (cpu_last >= 0 && cpu_first >= 0) ? cpu_last - cpu_first : -1.0,
      (bcpu_last >= 0 && bcpu_first >= 0) ? bcpu_last - bcpu_first : -1.0, timed_out, relay_died);
  free(seen);
  return (received == count && dup == 0 && bad == 0 && left_in == 0) ? 0 : 3;
}
