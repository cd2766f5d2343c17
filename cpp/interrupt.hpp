// Cooperative interruption of long core calls, without Python in the core.
//
// A caller (the bindings) installs a check function for the calling thread
// with InterruptScope. parallel_for calls it from the calling thread between
// tasks, at most every kInterruptPeriod; when it returns true the remaining
// tasks are skipped and Interrupted is thrown once all workers have stopped.
#pragma once

#include <chrono>
#include <stdexcept>

namespace cryocore {

struct Interrupted : std::runtime_error {
  Interrupted() : std::runtime_error("interrupted") {}
};

using InterruptCheck = bool (*)();

constexpr std::chrono::milliseconds kInterruptPeriod{50};

inline InterruptCheck& current_interrupt_check() {
  thread_local InterruptCheck check = nullptr;
  return check;
}

class InterruptScope {
 public:
  explicit InterruptScope(InterruptCheck check) : previous_(current_interrupt_check()) {
    current_interrupt_check() = check;
  }
  ~InterruptScope() { current_interrupt_check() = previous_; }
  InterruptScope(const InterruptScope&) = delete;
  InterruptScope& operator=(const InterruptScope&) = delete;

 private:
  InterruptCheck previous_;
};

}  // namespace cryocore
