// Umbrella header: the whole terra::graph API (the IR, merge, cursor, verifier, printer,
// executor). JSON is separate (terra/graph/json.h) because it pulls in nlohmann/json.
#pragma once

#include "terra/graph/arg.h"
#include "terra/graph/cursor.h"
#include "terra/graph/execution_plan.h"
#include "terra/graph/executor.h"
#include "terra/graph/hash.h"
#include "terra/graph/input_ref.h"
#include "terra/graph/node.h"
#include "terra/graph/op_identity.h"
#include "terra/graph/op_record.h"
#include "terra/graph/printer.h"
#include "terra/graph/tensor_meta.h"
#include "terra/graph/trace.h"
#include "terra/graph/trace_graph.h"
#include "terra/graph/verify.h"
