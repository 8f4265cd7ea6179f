// Conversions between Python objects and nlohmann::json, for message contents.
#pragma once

#include <pybind11/pybind11.h>

#include "nlohmann/json.hpp"
#include "xeus/xmessage.hpp"

namespace terra::kernel {

namespace py = pybind11;
namespace nl = nlohmann;

// Converts a JSON-able Python object (dict, list, tuple, str, int, float, bool, None).
// Strings are encoded with errors="replace"; other objects become their str().
nl::json to_json(const py::handle& obj);

// Converts JSON to the matching Python objects.
py::object from_json(const nl::json& value);

// Python buffers (bytes, bytearray, memoryview, or None) to xeus binary buffers.
xeus::buffer_sequence to_buffers(const py::handle& buffers);

// xeus binary buffers to a list of memoryviews over bytes objects.
py::list from_buffers(const xeus::buffer_sequence& buffers);

// A received message as the dict Python comm code expects
// (header, parent_header, metadata, content, buffers).
py::dict message_to_python(const xeus::xmessage& msg);

}  // namespace terra::kernel
