// make_device_side for a build without CUDA.
#include "device_side.h"

#include "error.h"

namespace diffcoll {

std::unique_ptr<Side> make_device_side(Comm&, int device_id, const std::string&,
                                       const std::shared_ptr<gloo::rendezvous::Store>&) {
  fail(Status::kUnsupported, "device_id ", device_id,
       " asks for a device side, but this diffcoll was built without CUDA "
       "(-DDIFFCOLL_CUDA=OFF or no CUDA toolkit found)");
}

}  // namespace diffcoll
