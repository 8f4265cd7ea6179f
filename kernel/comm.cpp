// Comm facility: comms live in xeus' comm manager (so comm_info_request, routing and
// binary buffers are xeus'), and every event is handed to one Python router,
// terra.kernel.comm, which implements the `comm` package's API on top.
#include <memory>
#include <string>

#include "kernel/interpreter.hpp"
#include "kernel/native_module.hpp"
#include "kernel/py_json.hpp"
#include "xeus/xcomm.hpp"

namespace terra::kernel {
namespace {

// The Python callable events go to: router(event, key, payload...). Set once at shell
// start and deliberately never destroyed (Python is not finalised at exit).
py::object* g_router = nullptr;

void route(const char* event, const std::string& key, py::object payload,
           const xeus::xmessage& msg) {
  interpreter::instance().run_user_callback([&] {
    if (g_router == nullptr) return;
    (*g_router)(event, key, payload, message_to_python(msg));
  });
}

xeus::xcomm_manager& comm_manager() { return interpreter::instance().comm_manager(); }

// xeus 2.4's target() default-constructs an empty target for unknown names; a comm
// opened on such a target would have no manager. Register a silent one first.
xeus::xtarget* ensure_target(const std::string& name) {
  xeus::xtarget* target = comm_manager().target(name);
  if (target->name().empty()) {
    comm_manager().register_comm_target(name, [](xeus::xcomm&&, xeus::xmessage) {});
    target = comm_manager().target(name);
  }
  return target;
}

// One comm as xeus knows it. Its handlers capture only the comm id, never Python
// objects, so no reference cycle crosses the C++ boundary.
class native_comm {
 public:
  native_comm(const std::string& target_name, const std::string& comm_id)
      : m_comm(std::make_unique<xeus::xcomm>(ensure_target(target_name),
                                             xeus::xguid(comm_id.c_str()))) {
    install_handlers();
  }
  explicit native_comm(xeus::xcomm&& comm)
      : m_comm(std::make_unique<xeus::xcomm>(std::move(comm))) {
    install_handlers();
  }

  std::string comm_id() const { return std::string(m_comm->id().c_str()); }

  void open(const py::object& data, const py::object& metadata, const py::object& buffers) {
    m_comm->open(to_json(metadata), to_json(data), to_buffers(buffers));
  }
  void send(const py::object& data, const py::object& metadata, const py::object& buffers) {
    m_comm->send(to_json(metadata), to_json(data), to_buffers(buffers));
  }
  void close(const py::object& data, const py::object& metadata, const py::object& buffers) {
    m_comm->close(to_json(metadata), to_json(data), to_buffers(buffers));
  }

 private:
  void install_handlers() {
    const std::string id = comm_id();
    m_comm->on_message([id](xeus::xmessage msg) { route("msg", id, py::none(), msg); });
    m_comm->on_close([id](xeus::xmessage msg) { route("close", id, py::none(), msg); });
  }

  std::unique_ptr<xeus::xcomm> m_comm;
};

}  // namespace

void bind_comm(py::module_& m) {
  py::class_<native_comm>(m, "Comm", "A comm registered in xeus' comm manager.")
      .def(py::init<const std::string&, const std::string&>(), py::arg("target_name"),
           py::arg("comm_id"))
      .def_property_readonly("comm_id", &native_comm::comm_id)
      .def("open", &native_comm::open, py::arg("data"), py::arg("metadata"), py::arg("buffers"))
      .def("send", &native_comm::send, py::arg("data"), py::arg("metadata"), py::arg("buffers"))
      .def("close", &native_comm::close, py::arg("data"), py::arg("metadata"), py::arg("buffers"));

  m.def(
      "set_comm_router",
      [](py::object router) {
        if (g_router == nullptr) g_router = new py::object();
        *g_router = std::move(router);
      },
      "Set router(event, key, payload, msg) for 'open' (key: target name, payload: Comm), "
      "'msg' and 'close' (key: comm id).");
  m.def(
      "register_target",
      [](const std::string& target_name) {
        comm_manager().register_comm_target(
            target_name, [target_name](xeus::xcomm&& comm, xeus::xmessage msg) {
              auto opened = std::make_shared<xeus::xcomm>(std::move(comm));
              interpreter::instance().run_user_callback([&] {
                if (g_router == nullptr) return;
                py::object handle = py::cast(new native_comm(std::move(*opened)),
                                             py::return_value_policy::take_ownership);
                (*g_router)("open", target_name, handle, message_to_python(msg));
              });
            });
      },
      "Route comm_open requests for `target_name` to the router.");
  m.def(
      "unregister_target",
      [](const std::string& target_name) { comm_manager().unregister_comm_target(target_name); },
      "Stop accepting comm_open for `target_name`.");
}

}  // namespace terra::kernel
