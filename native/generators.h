// Random generators cross into JS as small integer ids, like tensors.
#pragma once

#include <ATen/ATen.h>

namespace extrema {

at::Generator& GetGenerator(double id);

}  // namespace extrema
