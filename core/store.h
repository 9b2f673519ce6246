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

// Parses `name` and opens (or, for local://, finds or creates) the store.
// Throws Error(kInvalidArgument) for a malformed name, kSystem if the store
// cannot be opened.
Rendezvous open_rendezvous(const std::string& name);

}  // namespace diffcoll
