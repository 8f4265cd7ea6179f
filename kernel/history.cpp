#include "kernel/history.hpp"

#include <string>

#include "kernel/interpreter.hpp"

namespace terra::kernel {
namespace {

class shell_history_manager : public xeus::xhistory_manager {
 private:
  void configure_impl() override {}

  void store_inputs_impl(int, int, const std::string&, const std::string&) override {}

  nl::json get_tail_impl(int n, bool raw, bool output) const override {
    return query("tail", {{"n", n}, {"raw", raw}, {"output", output}});
  }

  nl::json get_range_impl(int session, int start, int stop, bool raw, bool output) const override {
    return query(
        "range",
        {{"session", session}, {"start", start}, {"stop", stop}, {"raw", raw}, {"output", output}});
  }

  nl::json search_impl(const std::string& pattern, bool raw, bool output, int n,
                       bool unique) const override {
    return query(
        "search",
        {{"pattern", pattern}, {"raw", raw}, {"output", output}, {"n", n}, {"unique", unique}});
  }

  static nl::json query(const std::string& method, const nl::json& args) {
    return interpreter::instance().history(method, args);
  }
};

}  // namespace

std::unique_ptr<xeus::xhistory_manager> make_shell_history_manager() {
  return std::make_unique<shell_history_manager>();
}

}  // namespace terra::kernel
