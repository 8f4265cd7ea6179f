// Assembles and runs the kernel: embedded Python, output capture, interpreter, server.
#pragma once

namespace terra::kernel {

// Runs the kernel for `terra-kernel -f CONNECTION_FILE`; returns the exit status when it
// cannot start (xeus ends the process itself after a shutdown_request).
int launch(int argc, char* argv[]);

}  // namespace terra::kernel
