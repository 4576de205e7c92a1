// Operator traces: the hooks dispatch.cc and tensor_data.cc call while a
// trace records on this thread (see trace.cc).
#pragma once

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>

namespace extrema {

// Whether a trace is recording on this thread (one thread-local load).
bool TraceRecording();
// The call about to run: the operator and its boxed arguments.
void TraceRecordCall(const c10::OperatorHandle& op, const torch::jit::Stack& args);
// The results the call left on its stack.
void TraceRecordResults(const torch::jit::Stack& results);
// JavaScript is reading the values of `t` (item, toBuffer): a recording that
// sees this for a traced tensor cannot be replayed and is refused at its end.
void TraceNoteRead(const at::Tensor& t, const char* what);
// JavaScript called `what`, which a trace does not record (backward, autocast,
// a collective): a recording that sees it is refused at its end.
void TraceRefuse(const char* what);

}  // namespace extrema
