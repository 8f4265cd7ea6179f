// terra-kernel: the Terra Jupyter kernel (`terra-kernel -f CONNECTION_FILE`).
#include "kernel/launcher.hpp"

int main(int argc, char* argv[]) { return terra::kernel::launch(argc, argv); }
