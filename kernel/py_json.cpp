#include "kernel/py_json.hpp"

#include <cmath>
#include <string>

namespace terra::kernel {
namespace {

std::string to_utf8(const py::handle& obj) {
  py::object encoded =
      py::reinterpret_steal<py::object>(PyUnicode_AsEncodedString(obj.ptr(), "utf-8", "replace"));
  if (!encoded) throw py::error_already_set();
  char* data = nullptr;
  Py_ssize_t size = 0;
  PyBytes_AsStringAndSize(encoded.ptr(), &data, &size);
  return std::string(data, static_cast<std::size_t>(size));
}

}  // namespace

nl::json to_json(const py::handle& obj) {
  if (obj.is_none()) return nullptr;
  if (PyBool_Check(obj.ptr())) return obj.cast<bool>();
  if (PyLong_Check(obj.ptr())) {
    int overflow = 0;
    long long value = PyLong_AsLongLongAndOverflow(obj.ptr(), &overflow);
    if (overflow == 0) return value;
    return to_utf8(py::str(obj));  // beyond 64 bits: keep the digits
  }
  if (PyFloat_Check(obj.ptr())) {
    double value = obj.cast<double>();
    if (std::isfinite(value)) return value;
    return nullptr;  // JSON has no NaN/Infinity
  }
  if (PyUnicode_Check(obj.ptr())) return to_utf8(obj);
  if (PyDict_Check(obj.ptr())) {
    nl::json result = nl::json::object();
    for (auto item : py::reinterpret_borrow<py::dict>(obj)) {
      std::string key =
          PyUnicode_Check(item.first.ptr()) ? to_utf8(item.first) : to_utf8(py::str(item.first));
      result[key] = to_json(item.second);
    }
    return result;
  }
  if (PyList_Check(obj.ptr()) || PyTuple_Check(obj.ptr())) {
    nl::json result = nl::json::array();
    for (auto item : obj) result.push_back(to_json(item));
    return result;
  }
  if (PyBytes_Check(obj.ptr())) return to_utf8(obj.attr("decode")("utf-8", "replace"));
  return to_utf8(py::str(obj));
}

py::object from_json(const nl::json& value) {
  switch (value.type()) {
    case nl::json::value_t::null:
      return py::none();
    case nl::json::value_t::boolean:
      return py::bool_(value.get<bool>());
    case nl::json::value_t::number_integer:
      return py::int_(value.get<long long>());
    case nl::json::value_t::number_unsigned:
      return py::int_(value.get<unsigned long long>());
    case nl::json::value_t::number_float:
      return py::float_(value.get<double>());
    case nl::json::value_t::string: {
      const auto& s = value.get_ref<const std::string&>();
      return py::reinterpret_steal<py::object>(
          PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "replace"));
    }
    case nl::json::value_t::array: {
      py::list result;
      for (const auto& item : value) result.append(from_json(item));
      return std::move(result);
    }
    case nl::json::value_t::object: {
      py::dict result;
      for (auto it = value.begin(); it != value.end(); ++it) {
        result[py::str(it.key())] = from_json(it.value());
      }
      return std::move(result);
    }
    default:
      return py::none();
  }
}

xeus::buffer_sequence to_buffers(const py::handle& buffers) {
  xeus::buffer_sequence result;
  if (buffers.is_none()) return result;
  for (auto item : buffers) {
    // PyObject_Bytes copies any buffer-protocol object, contiguous or not.
    py::object bytes = py::reinterpret_steal<py::object>(PyObject_Bytes(item.ptr()));
    if (!bytes) throw py::error_already_set();
    char* data = nullptr;
    Py_ssize_t size = 0;
    PyBytes_AsStringAndSize(bytes.ptr(), &data, &size);
    result.emplace_back(data, data + size);
  }
  return result;
}

py::list from_buffers(const xeus::buffer_sequence& buffers) {
  py::list result;
  for (const auto& buffer : buffers) {
    result.append(py::memoryview(py::bytes(buffer.data(), buffer.size())));
  }
  return result;
}

py::dict message_to_python(const xeus::xmessage& msg) {
  py::dict result;
  result["header"] = from_json(msg.header());
  result["parent_header"] = from_json(msg.parent_header());
  result["metadata"] = from_json(msg.metadata());
  result["content"] = from_json(msg.content());
  result["buffers"] = from_buffers(msg.buffers());
  result["msg_id"] = result["header"].attr("get")("msg_id");
  result["msg_type"] = result["header"].attr("get")("msg_type");
  return result;
}

}  // namespace terra::kernel
