# Finds LibTorch inside the pip-installed torch wheel of ${Python_EXECUTABLE}.
#
# The wheel is built with CUDA; its config then looks for the CUDA toolkit. With the
# toolkit present that succeeds, and nothing here needs a GPU to build or to run on CPU.
execute_process(
  COMMAND ${Python_EXECUTABLE} -c
    "import torch, pybind11; print(torch.utils.cmake_prefix_path); print(pybind11.get_cmake_dir()); print(int(torch._C._GLIBCXX_USE_CXX11_ABI))"
  OUTPUT_VARIABLE _terra_py_out
  OUTPUT_STRIP_TRAILING_WHITESPACE
  RESULT_VARIABLE _terra_py_rc)
if(NOT _terra_py_rc EQUAL 0)
  message(FATAL_ERROR "torch is not importable from ${Python_EXECUTABLE}; run `make setup`")
endif()
string(REPLACE "\n" ";" _terra_py_out "${_terra_py_out}")
list(GET _terra_py_out 0 TERRA_TORCH_CMAKE_PREFIX)
list(GET _terra_py_out 1 TERRA_PYBIND11_CMAKE_DIR)
list(GET _terra_py_out 2 TERRA_TORCH_CXX11_ABI)
list(APPEND CMAKE_PREFIX_PATH ${TERRA_TORCH_CMAKE_PREFIX})

find_package(Torch REQUIRED)
get_filename_component(TERRA_TORCH_LIB_DIR "${TORCH_LIBRARY}" DIRECTORY)
find_library(TERRA_TORCH_PYTHON_LIBRARY torch_python PATHS ${TERRA_TORCH_LIB_DIR} NO_DEFAULT_PATH REQUIRED)

# terra::torch: LibTorch's CPU face (headers, c10, torch_cpu, torch). Linking the full
# `torch` target would also pull CUDA libraries into every binary; the wheel's
# libtorch.so loads them itself when a GPU is used.
add_library(terra_torch INTERFACE)
add_library(terra::torch ALIAS terra_torch)
target_include_directories(terra_torch SYSTEM INTERFACE ${TORCH_INCLUDE_DIRS})
target_link_libraries(terra_torch INTERFACE ${TORCH_LIBRARY} c10 torch_cpu)
target_compile_definitions(terra_torch INTERFACE _GLIBCXX_USE_CXX11_ABI=${TERRA_TORCH_CXX11_ABI})
set_target_properties(terra_torch PROPERTIES INTERFACE_LINK_OPTIONS "-Wl,-rpath,${TERRA_TORCH_LIB_DIR}")

add_library(terra_torch_python INTERFACE)
add_library(terra::torch_python ALIAS terra_torch_python)
target_link_libraries(terra_torch_python INTERFACE terra::torch ${TERRA_TORCH_PYTHON_LIBRARY})
