// Scheduling wrapper for honest measurements on a shared 2-core VM
// (see shared/notes/benchmarking.md: autogroups make plain `nice` useless).
//
//   ember-sched [--cpu LIST] [--nice N] [--slice-us US] [--nofile N] [--no-setsid]
//               [--no-tune] -- CMD [ARGS...]
//       setsid() (own session: own autogroup, own process group), pin to LIST,
//       SCHED_OTHER at nice N (-19) with a US-microsecond slice (100;
//       sched_setattr's sched_runtime), the autogroup's nice to N, RLIMIT_NOFILE
//       to N, PR_SET_PDEATHSIG(SIGTERM), then exec CMD, which inherits all of it
//       (except the slice in threads and children it creates later: see --retune).
//   ember-sched --retune [--nice N] [--slice-us US] PID...
//       applies the nice and slice again to every thread of PID and of all its
//       descendants (nginx's worker, h2o's threads), then exits.
//   ember-sched --show PID...
//       prints, for every thread of PID and its descendants, what the kernel
//       reports: policy, nice, slice, affinity.
//
// Exit status: CMD's exec failure is 127; --retune/--show: 0, or 1 when a PID
// is gone.
#include <dirent.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

// The kernel's struct sched_attr (glibc 2.36 has no wrapper).
struct SchedAttr {
  uint32_t size;
  uint32_t sched_policy;
  uint64_t sched_flags;
  int32_t sched_nice;
  uint32_t sched_priority;
  uint64_t sched_runtime;
  uint64_t sched_deadline;
  uint64_t sched_period;
  uint32_t sched_util_min;
  uint32_t sched_util_max;
};

int set_attr(pid_t tid, int nice, uint64_t slice_ns) {
  SchedAttr a{};
  a.size = sizeof a;
  a.sched_policy = SCHED_OTHER;
  a.sched_nice = nice;
  a.sched_runtime = slice_ns;
  return static_cast<int>(syscall(SYS_sched_setattr, tid, &a, 0u));
}

bool get_attr(pid_t tid, SchedAttr& a) {
  a = SchedAttr{};
  return syscall(SYS_sched_getattr, tid, &a, sizeof a, 0u) == 0;
}

std::vector<pid_t> numbers_in(const std::string& dir) {
  std::vector<pid_t> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d))
      if (e->d_name[0] >= '0' && e->d_name[0] <= '9') out.push_back(std::atoi(e->d_name));
    closedir(d);
  }
  return out;
}

pid_t parent_of(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  size_t r = s.rfind(')');
  if (r == std::string::npos) return -1;
  std::istringstream rest(s.substr(r + 2));
  char state;
  pid_t ppid = -1;
  rest >> state >> ppid;
  return ppid;
}

// PID and every descendant process.
std::vector<pid_t> tree(pid_t root) {
  std::vector<pid_t> all = numbers_in("/proc");
  std::vector<pid_t> out{root};
  for (size_t i = 0; i < out.size(); ++i)
    for (pid_t p : all)
      if (parent_of(p) == out[i]) out.push_back(p);
  return out;
}

std::string comm_of(pid_t pid, pid_t tid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/comm");
  std::string s;
  std::getline(f, s);
  return s;
}

std::string cpus_of(pid_t tid) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(tid, sizeof set, &set) != 0) return "?";
  std::string out;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) {
      if (!out.empty()) out.push_back(',');
      out.append(std::to_string(c));
    }
  return out;
}

bool parse_cpus(const char* list, cpu_set_t& set) {
  CPU_ZERO(&set);
  std::stringstream ss(list);
  std::string item;
  bool any = false;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) return false;
    CPU_SET(std::atoi(item.c_str()), &set);
    any = true;
  }
  return any;
}

int usage() {
  std::fprintf(stderr,
               "usage: ember-sched [--cpu LIST] [--nice N] [--slice-us US] [--nofile N] "
               "[--no-setsid] [--no-tune] -- CMD [ARGS...]\n"
               "       ember-sched --retune [--nice N] [--slice-us US] PID...\n"
               "       ember-sched --show PID...\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  const char* cpus = nullptr;
  int nice = -19;
  uint64_t slice_us = 100;
  long nofile = 0;
  bool do_setsid = true, tune = true, retune = false, show = false;
  int i = 1;
  for (; i < argc; ++i) {
    std::string a = argv[i];
    bool has_value = i + 1 < argc;
    if (a == "--") {
      ++i;
      break;
    } else if (a == "--cpu" && has_value) {
      cpus = argv[++i];
    } else if (a == "--nice" && has_value) {
      nice = std::atoi(argv[++i]);
    } else if (a == "--slice-us" && has_value) {
      slice_us = std::strtoull(argv[++i], nullptr, 10);
    } else if (a == "--nofile" && has_value) {
      nofile = std::atol(argv[++i]);
    } else if (a == "--no-setsid") {
      do_setsid = false;
    } else if (a == "--no-tune") {
      tune = false;
    } else if (a == "--retune") {
      retune = true;
    } else if (a == "--show") {
      show = true;
    } else if (a[0] >= '0' && a[0] <= '9' && (retune || show)) {
      break;
    } else {
      return usage();
    }
  }
  if (i >= argc) return usage();

  if (retune || show) {
    int status = 0;
    for (; i < argc; ++i) {
      pid_t root = std::atoi(argv[i]);
      if (kill(root, 0) != 0) {
        status = 1;
        continue;
      }
      for (pid_t p : tree(root)) {
        for (pid_t tid : numbers_in("/proc/" + std::to_string(p) + "/task")) {
          if (retune) {
            set_attr(tid, nice, slice_us * 1000);
            continue;
          }
          SchedAttr a;
          if (!get_attr(tid, a)) continue;
          std::printf("%d/%d %s: policy %u nice %d slice %lluus cpus %s\n", p, tid,
                      comm_of(p, tid).c_str(), a.sched_policy, a.sched_nice,
                      static_cast<unsigned long long>(a.sched_runtime / 1000),
                      cpus_of(tid).c_str());
        }
      }
    }
    return status;
  }

  if (do_setsid && setsid() < 0) {
    // Already a process-group leader: start the command in a child instead.
    pid_t child = fork();
    if (child < 0) return 127;
    if (child > 0) {
      int st = 0;
      waitpid(child, &st, 0);
      return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    setsid();
  }
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (cpus != nullptr) {
    cpu_set_t set;
    if (!parse_cpus(cpus, set)) return usage();
    if (sched_setaffinity(0, sizeof set, &set) != 0)
      std::fprintf(stderr, "ember-sched: sched_setaffinity: %s\n", std::strerror(errno));
  }
  if (nofile > 0) {
    rlimit rl{static_cast<rlim_t>(nofile), static_cast<rlim_t>(nofile)};
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {  // not privileged: as high as allowed
      getrlimit(RLIMIT_NOFILE, &rl);
      rl.rlim_cur = rl.rlim_max;
      setrlimit(RLIMIT_NOFILE, &rl);
    }
  }
  if (tune) {
    if (setpriority(PRIO_PROCESS, 0, nice) != 0)
      std::fprintf(stderr, "ember-sched: setpriority: %s\n", std::strerror(errno));
    if (set_attr(0, nice, slice_us * 1000) != 0)
      std::fprintf(stderr, "ember-sched: sched_setattr: %s\n", std::strerror(errno));
    // With autogroups a task's nice only counts inside its group; the group's
    // own nice is what competes with other sessions.
    if (std::FILE* f = std::fopen("/proc/self/autogroup", "w")) {
      std::fprintf(f, "%d", nice);
      std::fclose(f);
    }
  }
  execvp(argv[i], argv + i);
  std::fprintf(stderr, "ember-sched: exec %s: %s\n", argv[i], std::strerror(errno));
  return 127;
}
