// The client's types <-> the generated flame.v1 messages.
#pragma once

#include <string>

#include "ember/flame_client.hpp"
#include "ember_flame_wire.pb.h"

namespace ember::flame::client {

namespace pb = ember::wire::flame::v1;

inline std::optional<std::string> opt(bool has, const std::string& v) {
  if (!has) return std::nullopt;
  return v;
}

inline Bytes owned(const std::string& s) {
  return Bytes::copy(std::string_view(s));
}

inline std::vector<Event> from_proto(const google::protobuf::RepeatedPtrField<pb::Event>& events) {
  std::vector<Event> out;
  out.reserve(events.size());
  for (const auto& e : events)
    out.push_back({e.code(), opt(e.has_message(), e.message()), e.creation_time()});
  return out;
}

inline void to_proto(const ApplicationAttributes& a, pb::ApplicationSpec& s) {
  s.set_shim(static_cast<pb::Shim>(a.shim.value_or(Shim::Host)));
  if (a.description) s.set_description(*a.description);
  for (const auto& l : a.labels)
    s.add_labels(l);
  if (a.image) s.set_image(*a.image);
  if (a.command) s.set_command(*a.command);
  for (const auto& arg : a.arguments)
    s.add_arguments(arg);
  for (const auto& [k, v] : a.environments) {
    auto* e = s.add_environments();
    e->set_name(k);
    e->set_value(v);
  }
  if (a.working_directory) s.set_working_directory(*a.working_directory);
  if (a.max_instances) s.set_max_instances(*a.max_instances);
  if (a.delay_release) s.set_delay_release(a.delay_release->count());
  if (a.schema) {
    auto* sc = s.mutable_schema();
    if (a.schema->input) sc->set_input(*a.schema->input);
    if (a.schema->output) sc->set_output(*a.schema->output);
    if (a.schema->common_data) sc->set_common_data(*a.schema->common_data);
  }
  if (a.url) s.set_url(*a.url);
  if (a.installer) s.set_installer(*a.installer);
}

inline Application from_proto(const pb::Application& p) {
  Application a;
  a.name = p.metadata().name().empty() ? p.metadata().id() : p.metadata().name();
  const auto& s = p.spec();
  auto& at = a.attributes;
  at.shim = static_cast<Shim>(s.shim());
  at.description = opt(s.has_description(), s.description());
  at.labels.assign(s.labels().begin(), s.labels().end());
  at.image = opt(s.has_image(), s.image());
  at.command = opt(s.has_command(), s.command());
  at.arguments.assign(s.arguments().begin(), s.arguments().end());
  for (const auto& e : s.environments())
    at.environments[e.name()] = e.value();
  at.working_directory = opt(s.has_working_directory(), s.working_directory());
  if (s.has_max_instances()) at.max_instances = s.max_instances();
  if (s.has_delay_release()) at.delay_release = std::chrono::seconds(s.delay_release());
  if (s.has_schema()) {
    const auto& sc = s.schema();
    at.schema =
        ApplicationSchema{opt(sc.has_input(), sc.input()), opt(sc.has_output(), sc.output()),
                          opt(sc.has_common_data(), sc.common_data())};
  }
  at.url = opt(s.has_url(), s.url());
  at.installer = opt(s.has_installer(), s.installer());
  a.state = static_cast<ApplicationState>(p.status().state());
  a.creation_time = p.status().creation_time();
  return a;
}

inline void to_proto(const SessionAttributes& a, pb::SessionSpec& s) {
  s.set_application(a.application);
  if (a.common_data) s.set_common_data(std::string(a.common_data->view()));
  s.set_min_instances(a.min_instances);
  if (a.max_instances) s.set_max_instances(*a.max_instances);
  s.set_batch_size(a.batch_size);
  s.set_priority(a.priority);
  if (a.resreq) {
    auto* r = s.mutable_resreq();
    r->set_cpu(a.resreq->cpu);
    r->set_memory(a.resreq->memory);
    r->set_gpu(a.resreq->gpu);
  }
}

inline SessionInfo from_proto(const pb::Session& p) {
  SessionInfo i;
  i.id = p.metadata().id();
  const auto& s = p.spec();
  auto& a = i.attributes;
  a.id = i.id;
  a.application = s.application();
  if (s.has_common_data()) a.common_data = owned(s.common_data());
  a.min_instances = s.min_instances();
  if (s.has_max_instances()) a.max_instances = s.max_instances();
  a.batch_size = s.batch_size();
  a.priority = s.priority();
  if (s.has_resreq())
    a.resreq = ResourceRequirement{s.resreq().cpu(), s.resreq().memory(), s.resreq().gpu()};
  const auto& st = p.status();
  i.state = static_cast<SessionState>(st.state());
  i.creation_time = st.creation_time();
  if (st.has_completion_time()) i.completion_time = st.completion_time();
  i.pending = st.pending();
  i.running = st.running();
  i.succeed = st.succeed();
  i.failed = st.failed();
  i.cancelled = st.cancelled();
  i.events = from_proto(st.events());
  return i;
}

inline Task from_proto(const pb::Task& p) {
  Task t;
  t.id = p.metadata().id();
  t.session_id = p.spec().session_id();
  if (p.spec().has_input()) t.input = owned(p.spec().input());
  if (p.spec().has_output()) t.output = owned(p.spec().output());
  const auto& st = p.status();
  t.state = static_cast<TaskState>(st.state());
  t.creation_time = st.creation_time();
  if (st.has_completion_time()) t.completion_time = st.completion_time();
  t.events = from_proto(st.events());
  return t;
}

// What differs between the spec asked for and the session found, as
// "application is 'a' here, 'b' on the server; …" (empty: they match).
// Fields the server may fill in on its own (batch size) are not compared.
inline std::string spec_differences(const SessionAttributes& want, const SessionAttributes& have) {
  std::string out;
  auto add = [&](std::string_view field, const std::string& w, const std::string& h) {
    if (w == h) return;
    if (!out.empty()) out.append("; ");
    out.append(field)
        .append(" is '")
        .append(w)
        .append("' here, '")
        .append(h)
        .append("' on the server");
  };
  auto opt_num = [](const std::optional<uint32_t>& v) {
    return v ? std::to_string(*v) : std::string("none");
  };
  add("application", want.application, have.application);
  add("min_instances", std::to_string(want.min_instances), std::to_string(have.min_instances));
  add("max_instances", opt_num(want.max_instances), opt_num(have.max_instances));
  add("priority", std::to_string(want.priority), std::to_string(have.priority));
  add("resreq", want.resreq ? want.resreq->to_string() : "none",
      have.resreq ? have.resreq->to_string() : "none");
  auto data = [](const std::optional<Bytes>& b) {
    return b ? std::to_string(b->size()) + " bytes" : std::string("none");
  };
  bool same_data = want.common_data.has_value() == have.common_data.has_value() &&
                   (!want.common_data || want.common_data->view() == have.common_data->view());
  if (!same_data) {
    std::string w = data(want.common_data), h = data(have.common_data);
    if (w == h) {
      w.append(" (different)");
      h.append(" (different)");
    }
    add("common_data", w, h);
  }
  return out;
}

}  // namespace ember::flame::client
