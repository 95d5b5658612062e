// slingshot_microservice._native: ember::queue::Microservice for Python.
//
// The Python package (slingshot_microservice/) wraps this module; users never
// import it. Threads: start() runs the C++ runtime with the GIL released; its
// worker threads take the GIL only to run the Python side of a request
// (_runtime.Runtime.call) and give it back around every blocking C++ call
// (opening an S3 object, reading it, writing a staged file).
#include <Python.h>
#include <pybind11/pybind11.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "ember/queue.hpp"

namespace py = pybind11;
using ember::queue::Case;
using ember::queue::InputFile;
using ember::queue::OutputFile;
using ember::queue::ProcessResult;
using ember::queue::ReadFileFn;
using ember::queue::WriteFileFn;

namespace {

// Holds the GIL on a runtime worker thread. The thread's Python state is made
// once and kept (never deleted), so threading.local data (the worker's
// database connection) lives across requests; workers end with start().
class WorkerGil {
 public:
  WorkerGil() {
    thread_local bool primed = false;
    if (!primed) {
      PyGILState_Ensure();  // creates this thread's state; the count stays 1 for good
      PyEval_SaveThread();
      primed = true;
    }
    state_ = PyGILState_Ensure();
  }
  ~WorkerGil() { PyGILState_Release(state_); }
  WorkerGil(const WorkerGil&) = delete;
  WorkerGil& operator=(const WorkerGil&) = delete;

 private:
  PyGILState_STATE state_;
};

// Runs f (a blocking C++ call) without the GIL; its failure becomes OSError.
template <class F>
void blocking(F&& f) {
  std::string error;
  {
    py::gil_scoped_release nogil;
    try {
      f();
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  if (!error.empty()) {
    PyErr_SetString(PyExc_OSError, error.c_str());
    throw py::error_already_set();
  }
}

// A one-dimensional byte view of a Python buffer (bytes, bytearray,
// memoryview); valid while `info` lives.
template <class Byte>
std::span<Byte> byte_view(const py::buffer& buffer, py::buffer_info& info, const char* what) {
  info = buffer.request(!std::is_const_v<Byte>);
  if (info.ndim != 1 || info.itemsize != 1)
    throw py::type_error(std::string(what) + " needs a contiguous byte buffer");
  return {static_cast<Byte*>(info.ptr), static_cast<size_t>(info.size)};
}

// One process() call: the C++ file functions are valid only while it runs.
struct CallState {
  uint64_t request = 0;
  const ReadFileFn* read_file = nullptr;
  const WriteFileFn* write_file = nullptr;
  bool live = true;

  void check() const {
    if (!live)
      throw py::value_error("a file of request " + std::to_string(request) +
                            " was used after process returned; files live only during the call "
                            "that opened them");
  }
};

class NativeInput {
 public:
  NativeInput(std::shared_ptr<CallState> call, InputFile* file)
      : call_(std::move(call)), file_(file) {}

  // Fills the buffer from the object; 0 at its end.
  size_t readinto(const py::buffer& buffer) {
    call_->check();
    py::buffer_info info;
    std::span<uint8_t> out = byte_view<uint8_t>(buffer, info, "readinto");
    size_t n = 0;
    blocking([&] { n = file_->read(out); });
    consumed_ += n;
    return n;
  }

  // The rest of the object, read straight into the bytes object returned.
  py::bytes read_all() {
    call_->check();
    uint64_t size = file_->size();
    uint64_t want = size > consumed_ ? size - consumed_ : 0;
    PyObject* raw = PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(want));
    if (!raw) throw py::error_already_set();
    py::bytes out = py::reinterpret_steal<py::bytes>(raw);
    auto* p = reinterpret_cast<uint8_t*>(PyBytes_AS_STRING(raw));
    size_t got = 0;
    blocking([&] {
      while (got < want) {
        size_t n = file_->read({p + got, static_cast<size_t>(want - got)});
        if (n == 0) break;
        got += n;
      }
    });
    consumed_ += got;
    if (got != want) throw py::value_error("the object ended early");  // S3 said otherwise
    return out;
  }

  uint64_t size() const { return file_->size(); }

 private:
  std::shared_ptr<CallState> call_;
  InputFile* file_;
  uint64_t consumed_ = 0;
};

class NativeOutput {
 public:
  NativeOutput(std::shared_ptr<CallState> call, OutputFile* file)
      : call_(std::move(call)), file_(file) {}

  size_t write(const py::buffer& buffer) {
    call_->check();
    py::buffer_info info;
    std::span<const uint8_t> data = byte_view<const uint8_t>(buffer, info, "write");
    blocking([&] { file_->write(data); });
    return data.size();
  }

  std::string path() const { return file_->path(); }

 private:
  std::shared_ptr<CallState> call_;
  OutputFile* file_;
};

class NativeCall {
 public:
  explicit NativeCall(std::shared_ptr<CallState> state) : state_(std::move(state)) {}

  NativeInput read(const std::string& key, uint64_t id) {
    state_->check();
    InputFile* f = nullptr;
    blocking([&] { f = &(*state_->read_file)(key, id); });  // bucket lookup, GET
    return NativeInput(state_, f);
  }

  NativeOutput write(const std::string& key, uint64_t id) {
    state_->check();
    OutputFile* f = nullptr;
    blocking([&] { f = &(*state_->write_file)(key, id); });
    return NativeOutput(state_, f);
  }

 private:
  std::shared_ptr<CallState> state_;
};

std::string type_name(py::handle h) {
  return py::str(py::type::handle_of(h).attr("__name__"));
}

template <class Where>
Case case_of(PyObject* c, const Where& where) {
  if (PyBool_Check(c)) return Case(c == Py_True);
  if (PyLong_Check(c)) {
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(c, &overflow);
    if (overflow)
      throw std::runtime_error(where() + ": the case " + std::string(py::str(c)) +
                               " does not fit in 64 bits");
    return Case(static_cast<int64_t>(v));
  }
  if (PyUnicode_Check(c)) {
    Py_ssize_t n = 0;
    const char* s = PyUnicode_AsUTF8AndSize(c, &n);
    if (!s) throw py::error_already_set();
    return Case(std::string_view(s, static_cast<size_t>(n)));
  }
  throw std::runtime_error(where() + ": the case is a " + type_name(c) +
                           "; a case is a bool, an int or a str (CaseVariable)");
}

// One (id, case) pair from process into the C++ result.
void convert_result(py::handle item, size_t index, ProcessResult& out) {
  auto where = [&] { return "result " + std::to_string(index) + " of process"; };
  if (!PyTuple_Check(item.ptr()) || PyTuple_GET_SIZE(item.ptr()) != 2)
    throw std::runtime_error(where() + " is a " + type_name(item) + ", not an (id, case) tuple");
  PyObject* id = PyTuple_GET_ITEM(item.ptr(), 0);
  PyObject* c = PyTuple_GET_ITEM(item.ptr(), 1);
  if (!PyLong_Check(id))
    throw std::runtime_error(where() + ": the id is a " + type_name(id) + ", not an int");
  unsigned long long value = PyLong_AsUnsignedLongLong(id);
  if (value == static_cast<unsigned long long>(-1) && PyErr_Occurred()) {
    PyErr_Clear();
    throw std::runtime_error(where() + ": the id " + std::string(py::str(id)) +
                             " is not in 0..2**64-1");
  }
  out.emplace_back(value, case_of(c, where));
}

py::dict database_settings(const ember::queue::Database::Settings& s) {
  py::dict d;
  d["host"] = s.host;
  d["port"] = s.port;
  d["user"] = s.user;
  d["database"] = s.database;
  d["password"] = s.password;
  d["connect_timeout"] = s.connect_timeout.count();
  d["application_name"] = s.application_name;
  return d;
}

class NativeMicroservice {
 public:
  // make_runtime(settings: dict) -> an object whose call(request, call)
  // returns the results as a list, or a str (the formatted traceback) when
  // process raised.
  NativeMicroservice(std::string name, std::string host, py::object make_runtime,
                     ember::queue::MicroserviceOptions options)
      : make_runtime_(std::move(make_runtime)) {
    options.lazy_database = true;  // Python brings its own driver
    svc_ = std::make_unique<ember::queue::Microservice>(
        std::move(name), std::move(host),
        [this](uint64_t request, const ReadFileFn& read_file, const WriteFileFn& write_file,
               ember::queue::Database& db) { return call(request, read_file, write_file, db); },
        std::move(options));
  }

  ~NativeMicroservice() {
    svc_.reset();  // no worker runs once start() has returned
  }

  int start() {
    py::gil_scoped_release nogil;
    return svc_->start();
  }
  void stop() { svc_->stop(); }
  uint16_t metrics_port() const { return svc_->metrics_port(); }
  py::dict stats() const {
    ember::queue::MicroserviceStats s = svc_->stats();
    py::dict d;
    d["received"] = s.received;
    d["processed"] = s.processed;
    d["failed"] = s.failed;
    d["retried"] = s.retried;
    d["dead_lettered"] = s.dead_lettered;
    d["unrouted"] = s.unrouted;
    d["published"] = s.published;
    return d;
  }
  py::object runtime() const { return runtime_; }

 private:
  ProcessResult call(uint64_t request, const ReadFileFn& read_file, const WriteFileFn& write_file,
                     ember::queue::Database& db) {
    WorkerGil gil;
    auto state = std::make_shared<CallState>();
    state->request = request;
    state->read_file = &read_file;
    state->write_file = &write_file;
    struct Expire {
      CallState& s;
      ~Expire() { s.live = false; }
    } expire{*state};
    ProcessResult out;
    try {
      if (runtime_.is_none()) runtime_ = make_runtime_(database_settings(db.settings()));
      py::object results = runtime_.attr("call")(request, NativeCall(state));
      if (PyUnicode_Check(results.ptr())) throw std::runtime_error(py::str(results));
      size_t i = 0;
      for (py::handle item : results)
        convert_result(item, i++, out);
    } catch (py::error_already_set& e) {
      throw std::runtime_error(e.what());
    }
    return out;
  }

  py::object make_runtime_;
  py::object runtime_ = py::none();
  std::unique_ptr<ember::queue::Microservice> svc_;
};

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "Ember's queue runtime; use the slingshot_microservice package, not this module.";

  py::class_<NativeInput>(m, "Input")
      .def("readinto", &NativeInput::readinto, py::arg("buffer"))
      .def("read_all", &NativeInput::read_all)
      .def_property_readonly("size", &NativeInput::size);
  py::class_<NativeOutput>(m, "Output")
      .def("write", &NativeOutput::write, py::arg("data"))
      .def_property_readonly("path", &NativeOutput::path);
  py::class_<NativeCall>(m, "Call")
      .def("read", &NativeCall::read, py::arg("key"), py::arg("id"))
      .def("write", &NativeCall::write, py::arg("key"), py::arg("id"));

  py::class_<NativeMicroservice>(m, "Microservice")
      .def(py::init([](std::string name, std::string host, py::object make_runtime,
                       unsigned workers, bool process_on_loop, uint16_t prefetch,
                       bool durable_queues, unsigned max_attempts, std::string dead_letter_queue,
                       std::string temp_dir, double shutdown_timeout, std::string pass_program,
                       std::string metrics_listen, bool publisher_confirms) {
             ember::queue::MicroserviceOptions o;
             o.workers = workers;
             o.process_on_loop = process_on_loop;
             o.prefetch = prefetch;
             o.durable_queues = durable_queues;
             o.max_attempts = max_attempts;
             o.dead_letter_queue = std::move(dead_letter_queue);
             o.temp_dir = std::move(temp_dir);
             o.shutdown_timeout =
                 std::chrono::milliseconds(static_cast<int64_t>(shutdown_timeout * 1000.0));
             o.pass_program = std::move(pass_program);
             o.metrics_listen = std::move(metrics_listen);
             o.publisher_confirms = publisher_confirms;
             return std::make_unique<NativeMicroservice>(std::move(name), std::move(host),
                                                         std::move(make_runtime), std::move(o));
           }),
           py::arg("name"), py::arg("host"), py::arg("make_runtime"), py::arg("workers"),
           py::arg("process_on_loop"), py::arg("prefetch"), py::arg("durable_queues"),
           py::arg("max_attempts"), py::arg("dead_letter_queue"), py::arg("temp_dir"),
           py::arg("shutdown_timeout"), py::arg("pass_program"), py::arg("metrics_listen"),
           py::arg("publisher_confirms"))
      .def("start", &NativeMicroservice::start)
      .def("stop", &NativeMicroservice::stop)
      .def("stats", &NativeMicroservice::stats)
      .def_property_readonly("metrics_port", &NativeMicroservice::metrics_port)
      .def_property_readonly("runtime", &NativeMicroservice::runtime);
}
