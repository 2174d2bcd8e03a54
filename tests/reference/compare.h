// Error folds for the tests' comparisons that cannot lose a NaN.
//
// `std::max(m, e)` is `m < e ? e : m`: with e NaN the comparison is false and the NaN is
// dropped, so a kernel that writes NaN everywhere would pass a max-error check. Likewise
// `fabs(x - y) > tol` is false for NaN. Every comparison in the tests folds with
// `max_or_nan` (NaN wins) and accepts with `within` (`!(err <= tol)` fails on NaN).
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>

namespace rat::testing {

// max(a, b), except that a NaN in either is kept.
inline double max_or_nan(double a, double b) {
  if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<double>::quiet_NaN();
  return std::max(a, b);
}

// err <= tol, false when either is NaN.
inline bool within(double err, double tol) { return err <= tol; }

// The largest |got - want| and |want| over a run of values, NaN-preserving.
struct MaxAbsError {
  double err = 0, ref = 0;
  void add(double got, double want) {
    err = max_or_nan(err, std::fabs(got - want));
    ref = max_or_nan(ref, std::fabs(want));
  }
  // max|err| <= rel_tol * max|ref|; false if anything was NaN or infinite.
  bool within_relative(double rel_tol) const {
    return std::isfinite(err) && std::isfinite(ref) && within(err, rel_tol * std::max(ref, 1e-12));
  }
};

}  // namespace rat::testing
