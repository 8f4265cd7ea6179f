// The kernel's xeus server: xeus' own shell-in-main-thread server, made safe to
// publish from several threads and able to interrupt the running cell.
#pragma once

#include <functional>
#include <memory>
#include <mutex>

#include "nlohmann/json.hpp"
#include "xeus/xeus_context.hpp"
#include "xeus/xkernel_configuration.hpp"
#include "xeus/xserver.hpp"

namespace terra::kernel {

// Wraps xeus::xserver_shell_main (shell socket served by the main thread, control by
// its own thread) and adds two things xeus 2.4 lacks:
//  - publish() is serialised by a mutex: the output reader thread and the control
//    thread publish while the main thread runs a cell, and ZMQ sockets are not
//    thread-safe;
//  - an interrupt_request seen on the control channel calls the interrupt callback
//    before xeus answers it (xeus itself only replies);
//  - input_request carries the protocol's `password` field (xeus 2.4 sends `pwd`).
class kernel_server : public xeus::xserver {
 public:
  explicit kernel_server(std::unique_ptr<xeus::xserver> inner);
  ~kernel_server() override;

  // `callback` runs on the control thread for each interrupt_request.
  void set_interrupt_callback(std::function<void()> callback);

 private:
  xeus::xcontrol_messenger& get_control_messenger_impl() override;
  void send_shell_impl(xeus::xmessage msg) override;
  void send_control_impl(xeus::xmessage msg) override;
  void send_stdin_impl(xeus::xmessage msg) override;
  void publish_impl(xeus::xpub_message msg, xeus::channel c) override;
  void start_impl(xeus::xpub_message msg) override;
  void abort_queue_impl(const listener& l, long polling_interval) override;
  void stop_impl() override;
  void update_config_impl(xeus::xconfiguration& config) const override;

  void on_control_message(xeus::xmessage msg);

  std::unique_ptr<xeus::xserver> p_inner;
  std::mutex m_publish_mutex;
  std::mutex m_callback_mutex;
  std::function<void()> m_interrupt_callback;
};

// Server builder for xeus::xkernel.
std::unique_ptr<xeus::xserver> make_kernel_server(xeus::xcontext& context,
                                                  const xeus::xconfiguration& config,
                                                  nl::json::error_handler_t eh);

}  // namespace terra::kernel
