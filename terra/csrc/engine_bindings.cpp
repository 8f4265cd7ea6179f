// bind_engine: terra._C's face of the co-execution engine (terra::coexec::Engine).
//
// The engine knows no Python; this file lends it what needs Python (the source location of
// the running program, waiting with the GIL released) and converts its results to Python
// objects. No torch headers here: the engine's API is plain C++.
#include <Python.h>
#include <c10/util/Exception.h>
#include <frameobject.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <unordered_map>
#include <vector>

#include "bindings.h"
#include "terra/coexec/engine.h"

namespace py = pybind11;

namespace terra::python {
namespace {

using coexec::Engine;

// Path prefixes of library code (torch, terra): source locations skip their frames.
struct LibraryPrefixes {
  std::vector<std::string> prefixes;
};

LibraryPrefixes& library_prefixes() {
  static LibraryPrefixes prefixes;
  return prefixes;
}

bool is_library_file(const std::string& file) {
  if (file.empty() || file[0] == '<') return true;  // <frozen ...>, <string> of exec is user
  for (const auto& prefix : library_prefixes().prefixes) {
    if (file.compare(0, prefix.size(), prefix) == 0) return true;
  }
  return false;
}

// Finds the innermost frame of user code. Every traced op asks, so what is slow to compute
// from a frame is cached per code object: whether it is library code, its file name, and the
// line of each instruction offset (PyFrame_GetLineNumber walks the line table each time).
// The cache holds a reference to each code object, so an address is never reused while it is
// cached; it is dropped whole when it grows past kMaxCodes.
class SourceLocator {
 public:
  static SourceLocator& instance() {
    static SourceLocator* locator = new SourceLocator();  // never destroyed (interpreter exit)
    return *locator;
  }

  bool locate(graph::SharedString* file, int* line) {
    PyGILState_STATE gil = PyGILState_Ensure();
    bool found = false;
    PyFrameObject* frame = PyEval_GetFrame();  // borrowed
    if (frame != nullptr) Py_INCREF(frame);
    while (frame != nullptr && !found) {
      PyCodeObject* code = PyFrame_GetCode(frame);  // new reference
      CodeInfo& info = code_info(code);
      if (!info.library) {
        *file = info.file;
        *line = line_of(info, frame);
        found = true;
      }
      Py_DECREF(code);
      PyFrameObject* back = PyFrame_GetBack(frame);  // new reference
      Py_DECREF(frame);
      frame = back;
    }
    Py_XDECREF(frame);
    if (PyErr_Occurred()) PyErr_Clear();
    PyGILState_Release(gil);
    return found;
  }

  // Forgets every cached code object (the library prefixes changed). GIL held.
  void forget_all() {
    for (auto& [code, info] : codes_) Py_DECREF(info.code);
    codes_.clear();
  }

 private:
  static constexpr std::size_t kMaxCodes = 4096;

  struct CodeInfo {
    PyObject* code = nullptr;  // strong reference
    bool library = true;
    graph::SharedString file;  // shared by every record from this code object
    std::unordered_map<int, int> line_by_offset;
  };

  CodeInfo& code_info(PyCodeObject* code) {
    auto found = codes_.find(code);
    if (found != codes_.end()) return found->second;
    if (codes_.size() >= kMaxCodes) forget_all();
    CodeInfo info;
    info.code = reinterpret_cast<PyObject*>(code);
    Py_INCREF(info.code);
    const char* name = PyUnicode_AsUTF8(code->co_filename);
    const std::string file = name != nullptr ? name : "";
    info.file = file;
    info.library =
        is_library_file(file) && file.rfind("<ipython", 0) != 0 && file.rfind("<string>", 0) != 0;
    return codes_.emplace(code, std::move(info)).first->second;
  }

  static int line_of(CodeInfo& info, PyFrameObject* frame) {
#if PY_VERSION_HEX >= 0x030B0000
    const int offset = PyFrame_GetLasti(frame);
    auto found = info.line_by_offset.find(offset);
    if (found != info.line_by_offset.end()) return found->second;
    const int line = PyFrame_GetLineNumber(frame);
    info.line_by_offset.emplace(offset, line);
    return line;
#else
    (void)info;
    return PyFrame_GetLineNumber(frame);
#endif
  }

  std::unordered_map<PyCodeObject*, CodeInfo> codes_;
};

bool user_source_location(graph::SharedString* file, int* line) {
  return SourceLocator::instance().locate(file, line);
}

void wait_without_gil(const std::function<void()>& wait) {
  if (Py_IsInitialized() && PyGILState_Check()) {
    Py_BEGIN_ALLOW_THREADS wait();
    Py_END_ALLOW_THREADS
  } else {
    wait();
  }
}

py::dict counters_dict(const coexec::Counters& c) {
  py::dict d;
  d["iterations_traced"] = c.iterations_traced;
  d["iterations_coexecuted"] = c.iterations_coexecuted;
  d["iterations_without_ops"] = c.iterations_without_ops;
  d["iterations_aborted"] = c.iterations_aborted;
  d["fallbacks"] = c.fallbacks;
  d["fetches"] = c.fetches;
  d["feeds"] = c.feeds;
  d["eager_ops"] = c.eager_ops;
  d["ops_coexecuted"] = c.ops_coexecuted;
  d["backwards_replayed"] = c.backwards_replayed;
  d["time_python_s"] = c.time_python_s;
  d["time_graph_s"] = c.time_graph_s;
  return d;
}

py::dict stats_dict(const coexec::EngineStats& stats) {
  py::dict d = counters_dict(stats.total);
  d["graph_nodes"] = stats.graph_nodes;
  d["graph_branches"] = stats.graph_branches;
  py::list regions;
  for (const auto& r : stats.regions) {
    py::dict entry = counters_dict(r.counters);
    entry["id"] = r.id;
    entry["key"] = r.key;
    entry["name"] = r.name;
    entry["file"] = r.file;
    entry["line"] = r.line;
    entry["phase"] = r.phase;
    entry["graph_nodes"] = r.graph_nodes;
    entry["graph_branches"] = r.graph_branches;
    entry["regions"] = 1;
    regions.append(entry);
  }
  d["regions"] = regions;
  return d;
}

void configure(Engine& engine, const py::dict& knobs) {
  coexec::EngineConfig config = engine.config();
  for (const auto& [key, value] : knobs) {
    const std::string name = py::str(key);
    if (name == "enabled")
      config.enabled = value.cast<bool>();
    else if (name == "warmup_iterations")
      config.warmup_iterations = value.cast<int>();
    else if (name == "poison")
      config.poison = value.cast<bool>();
    else if (name == "debug")
      config.debug = value.cast<int>();
    else if (name == "max_graph_nodes")
      config.max_graph_nodes = value.cast<std::size_t>();
    else if (name == "max_fallbacks_in_row")
      config.max_fallbacks_in_row = value.cast<int>();
    else if (name == "max_queued")
      config.max_queued = value.cast<int>();
    else if (name == "max_queued_ms")
      config.max_queued_ms = value.cast<int>();
    else if (name == "replay_backward")
      config.replay_backward = value.cast<bool>();
    else
      throw py::key_error("terra: unknown engine knob " + name);
  }
  engine.configure(config);
}

py::dict config_dict(const Engine& engine) {
  const coexec::EngineConfig& c = engine.config();
  py::dict d;
  d["enabled"] = c.enabled;
  d["warmup_iterations"] = c.warmup_iterations;
  d["poison"] = c.poison;
  d["debug"] = c.debug;
  d["max_graph_nodes"] = c.max_graph_nodes;
  d["max_fallbacks_in_row"] = c.max_fallbacks_in_row;
  d["max_queued"] = c.max_queued;
  d["max_queued_ms"] = c.max_queued_ms;
  d["replay_backward"] = c.replay_backward;
  return d;
}

}  // namespace

void bind_engine(py::module_& m) {
  py::register_exception_translator([](std::exception_ptr error) {
    try {
      if (error) std::rethrow_exception(error);
    } catch (const c10::IndexError& e) {
      PyErr_SetString(PyExc_IndexError, e.what_without_backtrace());
    } catch (const c10::ValueError& e) {
      PyErr_SetString(PyExc_ValueError, e.what_without_backtrace());
    } catch (const c10::Error& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what_without_backtrace());
    }
  });

  py::class_<Engine, std::unique_ptr<Engine, py::nodelete>> engine(
      m, "Engine", "The co-execution engine of this process (use terra.engine.engine).");
  engine
      .def("region", &Engine::region, py::arg("key"), py::arg("name"), py::arg("file"),
           py::arg("line"), "Finds or creates the region with `key`; returns its id.")
      .def("begin_iteration", &Engine::begin_iteration, py::arg("region_id"))
      .def("end_iteration", &Engine::end_iteration)
      .def("abort_iteration", &Engine::abort_iteration)
      .def("sync", &Engine::sync, "Waits until the GraphRunner ran everything confirmed.")
      .def("quiesce", &Engine::quiesce,
           "A sync, then the idle GraphRunner gives its OpenMP team back at once.")
      .def("pending", &Engine::pending)
      .def("queued", &Engine::queued, "Confirmed ops not yet finished by the GraphRunner.")
      .def("fetch", &Engine::fetch,
           "Syncs before a read that bypasses the dispatcher; counts a fetch when it waits.")
      .def("expose", &Engine::expose, py::arg("storage"),
           "A numpy array views the storage at this address (UntypedStorage._cdata).")
      .def("release_exposed", &Engine::release_exposed, py::arg("storage"),
           "That numpy array died.")
      .def("settings_changed", &Engine::settings_changed, py::arg("flush_denormal") = -1,
           "A setting kernels read changed (after a sync): the runner follows it.")
      .def("adopt_thread", &Engine::adopt_thread,
           "Intercepts the calling thread, one of the program's other threads: its ops wait for "
           "what the loop's thread queued before them.")
      .def("pause_interception", &Engine::pause_interception)
      .def("resume_interception", &Engine::resume_interception, py::arg("was_on"))
      .def("stats", [](const Engine& e) { return stats_dict(e.stats()); })
      .def(
          "graph_json",
          [](const Engine& e, py::object region_id) {
            return e.graph_json(region_id.is_none() ? -1 : region_id.cast<int>());
          },
          py::arg("region_id") = py::none())
      .def("set_enabled", &Engine::set_enabled, py::arg("enabled"))
      .def("is_enabled", &Engine::is_enabled)
      .def("reset", &Engine::reset)
      .def("explain", &Engine::explain)
      .def("set_module_path", &Engine::set_module_path, py::arg("path"))
      .def("phase",
           [](const Engine& e, int region_id) { return coexec::phase_name(e.phase(region_id)); })
      .def("last_iteration_repeated", &Engine::last_iteration_repeated, py::arg("region_id"))
      .def("current_region", &Engine::current_region)
      .def("configure", &configure, "Sets knobs by name (see terra/config.py).")
      .def("config", &config_dict)
      .def("_hold_runner", &Engine::hold_runner, py::arg("hold"),
           "Test hook: while held the GraphRunner starts no work; a sync releases it.");

  m.def(
      "engine",
      []() {
        Engine& e = Engine::instance();
        static bool hooked = false;
        if (!hooked) {
          e.set_hooks({&user_source_location, &wait_without_gil});
          hooked = true;
        }
        return &e;
      },
      py::return_value_policy::reference,
      "The process-wide engine (installs the interception kernels on first use).");
  m.def(
      "set_library_prefixes",
      [](std::vector<std::string> prefixes) {
        library_prefixes().prefixes = std::move(prefixes);
        SourceLocator::instance().forget_all();
      },
      "Paths whose frames are library code for source locations (torch, terra).");
}

}  // namespace terra::python
