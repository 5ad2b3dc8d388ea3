// The deterministic test value of column k, element j, in row i - mirrored exactly by
// tests/python/roundtrip_values.py. Covers the extremes: NaN, +-inf, -0.0, denormals, min/max integers,
// full-length, empty and short strings.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string_view>
#include <type_traits>

#include <cbuf/fields.hpp>

namespace cbuf_test {

template <class T>
T value_for(std::uint64_t s) {
  if constexpr (std::is_same_v<T, bool>) {
    return s % 2 == 1;
  } else if constexpr (std::is_floating_point_v<T>) {
    using L = std::numeric_limits<T>;
    const T choices[] = {L::quiet_NaN(), L::infinity(), -L::infinity(), T(-0.0), L::denorm_min(), L::max(),
                         static_cast<T>(1.5 * static_cast<double>(s))};
    return choices[s % 7];
  } else if constexpr (std::is_signed_v<T>) {
    using L = std::numeric_limits<T>;
    const T choices[] = {L::min(), L::max(), T(0), T(-1), static_cast<T>(s % 100)};
    return choices[s % 5];
  } else {
    using L = std::numeric_limits<T>;
    const T choices[] = {T(0), L::max(), T(1), static_cast<T>(s % 100)};
    return choices[s % 4];
  }
}

// string[N]: full length (no NUL), empty, or three characters.
template <std::size_t N>
void string_for(std::array<char, N>& out, std::uint64_t s) {
  out.fill('\0');
  const std::size_t len = s % 3 == 0 ? N : s % 3 == 1 ? 0 : std::min<std::size_t>(3, N);
  for (std::size_t m = 0; m < len; ++m) out[m] = static_cast<char>('A' + (s + m) % 26);
}

template <class T>
struct is_std_array : std::false_type {};
template <class T, std::size_t N>
struct is_std_array<std::array<T, N>> : std::true_type {};

// Fills every column of row i through the generated visit_fields. `Visit` is the schema's visit_fields.
struct Filler {
  std::uint64_t i;
  std::uint64_t k = 0;
  template <class M>
  void operator()(const cbuf::FieldInfo& f, M& member) {
    if constexpr (is_std_array<M>::value) {
      using E = typename M::value_type;
      if (f.type.rfind("string[", 0) == 0) {
        if constexpr (std::is_same_v<E, char>) string_for(member, i + k);
      } else {
        for (std::size_t j = 0; j < member.size(); ++j) member[j] = value_for<E>(i + k + j);
      }
    } else {
      member = value_for<M>(i + k);
    }
    ++k;
  }
};

}  // namespace cbuf_test
