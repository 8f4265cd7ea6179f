// History facility: history_request answered from IPython's history manager, the one
// %history and In[] use, instead of a second copy in xeus.
#pragma once

#include <memory>

#include "xeus/xhistory_manager.hpp"

namespace terra::kernel {

// xeus history manager that forwards queries to the Python shell. Storing is IPython's
// job (run_cell stores each input), so store_inputs does nothing.
std::unique_ptr<xeus::xhistory_manager> make_shell_history_manager();

}  // namespace terra::kernel
