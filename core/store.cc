// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

#include "store.h"

#include <gloo/rendezvous/file_store.h>
#include <gloo/rendezvous/hash_store.h>
#include <gloo/rendezvous/redis_store.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>

#include "error.h"

namespace diffcoll {
namespace {

bool starts_with(const std::string& s, const char* prefix) {
  return s.compare(0, std::strlen(prefix), prefix) == 0;
}

// In-process stores stay alive while a communicator of theirs does, so a
// later world with the same name starts from an empty store.
std::shared_ptr<gloo::rendezvous::Store> local_store(const std::string& name) {
  static std::mutex mutex;
  static std::map<std::string, std::weak_ptr<gloo::rendezvous::Store>> stores;
  std::lock_guard<std::mutex> lock(mutex);
  for (auto it = stores.begin(); it != stores.end();)
    it = it->second.expired() ? stores.erase(it) : std::next(it);
  auto& slot = stores[name];
  auto store = slot.lock();
  if (!store) {
    store = std::make_shared<gloo::rendezvous::HashStore>();
    slot = store;
  }
  return store;
}

void make_directories(const std::string& path) {
  for (size_t pos = 1; pos <= path.size(); ++pos) {
    if (pos != path.size() && path[pos] != '/') continue;
    std::string part = path.substr(0, pos);
    if (mkdir(part.c_str(), 0755) != 0 && errno != EEXIST)
      fail(Status::kSystem, "cannot create the file store directory ", part, ": ",
           std::strerror(errno));
  }
}

}  // namespace

RendezvousAddress parse_rendezvous(const std::string& name) {
  using Kind = RendezvousAddress::Kind;
  RendezvousAddress a;
  if (starts_with(name, "local://")) {
    a.location = name.substr(8);
    DIFFCOLL_REQUIRE(!a.location.empty(), Status::kInvalidArgument,
                     "rendezvous \"", name, "\": local:// needs a name");
    return a;
  }
  if (starts_with(name, "file://")) {
    a.kind = Kind::kFile;
    a.location = name.substr(7);
    DIFFCOLL_REQUIRE(!a.location.empty() && a.location[0] == '/', Status::kInvalidArgument,
                     "rendezvous \"", name, "\": file:// needs an absolute path, e.g. file:///tmp/run1");
    return a;
  }
  if (starts_with(name, "redis://")) {
    a.kind = Kind::kRedis;
    std::string rest = name.substr(8);
    size_t slash = rest.find('/');
    std::string address = rest.substr(0, slash);
    if (slash != std::string::npos) a.prefix = rest.substr(slash + 1);
    size_t colon = address.rfind(':');
    DIFFCOLL_REQUIRE(colon != std::string::npos && colon > 0 && colon + 1 < address.size(),
                     Status::kInvalidArgument, "rendezvous \"", name,
                     "\": redis:// needs HOST:PORT, e.g. redis://127.0.0.1:6379/run1");
    a.location = address.substr(0, colon);
    const std::string digits = address.substr(colon + 1);
    long port = 0;
    for (char c : digits) {  // digits only: strtol would take signs and spaces
      const bool digit = c >= '0' && c <= '9';
      port = digit ? port * 10 + (c - '0') : 0;
      if (!digit || port >= 65536) {
        port = 0;
        break;
      }
    }
    DIFFCOLL_REQUIRE(port > 0, Status::kInvalidArgument, "rendezvous \"", name,
                     "\": bad port \"", digits, "\" (1..65535)");
    a.port = static_cast<int>(port);
    return a;
  }
  fail(Status::kInvalidArgument, "rendezvous \"", name,
       "\" is not local://NAME, file:///DIR or redis://HOST:PORT[/PREFIX]");
}

Rendezvous open_rendezvous(const std::string& name) {
  using Kind = RendezvousAddress::Kind;
  const RendezvousAddress a = parse_rendezvous(name);
  Rendezvous r;
  switch (a.kind) {
    case Kind::kLocal:
      r.store = local_store(a.location);
      r.in_process = true;
      break;
    case Kind::kFile:
      make_directories(a.location);
      r.store = std::make_shared<gloo::rendezvous::FileStore>(a.location);
      break;
    case Kind::kRedis:
      r.prefix = a.prefix;
      try {
        r.store = std::make_shared<gloo::rendezvous::RedisStore>(a.location, a.port);
      } catch (const std::exception& e) {
        fail(Status::kSystem, "cannot connect to the Redis store at ", a.location, ":", a.port,
             ": ", e.what());
      }
      break;
  }
  return r;
}

}  // namespace diffcoll
