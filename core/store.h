// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Rendezvous stores named by a string: local://NAME (in-process),
// file:///DIR (shared directory), redis://HOST:PORT[/PREFIX].
#pragma once

#include <memory>
#include <string>

namespace gloo {
namespace rendezvous {
class Store;
}
}  // namespace gloo

namespace diffcoll {

struct Rendezvous {
  std::shared_ptr<gloo::rendezvous::Store> store;
  std::string prefix;   // key prefix every communicator of this world uses
  bool in_process = false;
};

// What a rendezvous name says, before anything is opened.
struct RendezvousAddress {
  enum class Kind { kLocal, kFile, kRedis };
  Kind kind = Kind::kLocal;
  std::string location;  // local: the name; file: the directory; redis: the host
  int port = 0;          // redis only, 1..65535
  std::string prefix;    // redis only: the key prefix, may be empty
};

// Parses `name`; throws Error(kInvalidArgument) for a malformed one. Opens,
// creates and connects nothing.
RendezvousAddress parse_rendezvous(const std::string& name);

// Parses `name` and opens (or, for local://, finds or creates) the store.
// Throws Error(kInvalidArgument) for a malformed name, kSystem if the store
// cannot be opened.
Rendezvous open_rendezvous(const std::string& name);

}  // namespace diffcoll
