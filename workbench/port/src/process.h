// A child process started with `sh -c COMMAND`, spoken to through its stdin and stdout, one line
// at a time, with a deadline on every read; its stderr goes to a file. Private to wb_port.
#pragma once
#include <sys/types.h>

#include <optional>
#include <string>

namespace wb::port {

class Process {
 public:
  // Starts the command in its own process group (so a kill reaches what it starts in turn).
  // Throws std::runtime_error when the pipes or the spawn fail (a command that does not exist
  // is started: `sh` then exits with 127, seen at the first read).
  Process(const std::string& command, const std::string& stderr_path);
  ~Process();  // kills the group if still running
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  // false: the child closed its stdin (it exited, or will).
  bool write_line(const std::string& line);

  enum class Read { line, eof, timeout, too_long };
  // Reads up to '\n' (not included), waiting at most timeout_s in all.
  Read read_line(std::string& out, double timeout_s);

  // The exit status once the child has exited (waiting at most timeout_s); nullopt if it still
  // runs. Status: the exit code, or 128 + the signal that ended it.
  std::optional<int> wait(double timeout_s);
  void kill();  // SIGKILL to the group, then reaps it

 private:
  pid_t pid_ = -1;
  int in_ = -1, out_ = -1;
  std::string buf_;
  std::optional<int> status_;
};

}  // namespace wb::port
