// cbuf/cbuf.hpp - umbrella header: everything a producer or consumer needs.
#pragma once

#include "cbuf/consumer.hpp"
#include "cbuf/error.hpp"
#include "cbuf/fields.hpp"
#include "cbuf/format.hpp"
#include "cbuf/options.hpp"
#include "cbuf/producer.hpp"
#include "cbuf/ring.hpp"
#include "cbuf/seqlock.hpp"
#include "cbuf/os.hpp"
#include "cbuf/state.hpp"
#include "cbuf/thread.hpp"
