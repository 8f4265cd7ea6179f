#include "kernel/server.hpp"

#include <utility>

#include "xeus/xserver_shell_main.hpp"

namespace terra::kernel {

kernel_server::kernel_server(std::unique_ptr<xeus::xserver> inner) : p_inner(std::move(inner)) {
  p_inner->register_shell_listener(
      [this](xeus::xmessage m) { notify_shell_listener(std::move(m)); });
  p_inner->register_control_listener(
      [this](xeus::xmessage m) { on_control_message(std::move(m)); });
  p_inner->register_stdin_listener(
      [this](xeus::xmessage m) { notify_stdin_listener(std::move(m)); });
  p_inner->register_internal_listener(
      [this](nl::json m) { return notify_internal_listener(std::move(m)); });
}

kernel_server::~kernel_server() = default;

void kernel_server::set_interrupt_callback(std::function<void()> callback) {
  std::lock_guard<std::mutex> lock(m_callback_mutex);
  m_interrupt_callback = std::move(callback);
}

void kernel_server::on_control_message(xeus::xmessage msg) {
  if (msg.header().value("msg_type", "") == "interrupt_request") {
    std::function<void()> callback;
    {
      std::lock_guard<std::mutex> lock(m_callback_mutex);
      callback = m_interrupt_callback;
    }
    if (callback) callback();
  }
  notify_control_listener(std::move(msg));
}

xeus::xcontrol_messenger& kernel_server::get_control_messenger_impl() {
  return p_inner->get_control_messenger();
}

void kernel_server::send_shell_impl(xeus::xmessage msg) { p_inner->send_shell(std::move(msg)); }

void kernel_server::send_control_impl(xeus::xmessage msg) { p_inner->send_control(std::move(msg)); }

void kernel_server::send_stdin_impl(xeus::xmessage msg) {
  // xeus 2.4 names input_request's `password` field `pwd`; front ends read `password`.
  if (msg.content().contains("pwd") && !msg.content().contains("password")) {
    nl::json content = msg.content();
    content["password"] = content["pwd"];
    xeus::xmessage fixed(msg.identities(), msg.header(), msg.parent_header(), msg.metadata(),
                         std::move(content), std::move(msg).buffers());
    p_inner->send_stdin(std::move(fixed));
    return;
  }
  p_inner->send_stdin(std::move(msg));
}

void kernel_server::publish_impl(xeus::xpub_message msg, xeus::channel c) {
  std::lock_guard<std::mutex> lock(m_publish_mutex);
  p_inner->publish(std::move(msg), c);
}

void kernel_server::start_impl(xeus::xpub_message msg) { p_inner->start(std::move(msg)); }

void kernel_server::abort_queue_impl(const listener& l, long polling_interval) {
  p_inner->abort_queue(l, polling_interval);
}

void kernel_server::stop_impl() { p_inner->stop(); }

void kernel_server::update_config_impl(xeus::xconfiguration& config) const {
  p_inner->update_config(config);
}

std::unique_ptr<xeus::xserver> make_kernel_server(xeus::xcontext& context,
                                                  const xeus::xconfiguration& config,
                                                  nl::json::error_handler_t eh) {
  return std::make_unique<kernel_server>(xeus::make_xserver_shell_main(context, config, eh));
}

}  // namespace terra::kernel
