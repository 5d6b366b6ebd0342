// Temporary output files that an interrupt must not leave behind.
//
// Outputs are written under a temporary name ("<out>.partial-<pid>", "<out>.tmp-<pid>") and
// renamed into place once complete. While a TempFile is alive its name is registered; on SIGINT,
// SIGTERM or SIGHUP the handler unlinks every registered name (unlink is async-signal-safe) and
// then lets the signal's default action end the process, so the exit status still tells of the
// signal. SIGKILL cannot be caught: what it leaves is a temporary name every reader refuses.
// Handlers are installed on first use, and only for signals whose disposition is the default
// (a signal the caller ignores, e.g. SIGHUP under nohup, stays ignored).
#pragma once

#include <memory>
#include <string>

namespace wb {

class TempFile {
 public:
  explicit TempFile(std::string path);  // registers `path` (does not create it)
  ~TempFile();                          // unregisters (does not remove)
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int slot_ = -1;  // -1: not registered (no free slot, or a path too long to keep)
};

// The atomic writer every output of the tool goes through: content written to
// "<path>.tmp-<pid>" (registered above), flushed, then renamed onto path. Throws
// std::runtime_error naming the file; never leaves a half-written path.
void write_file_atomic(const std::string& path, const std::string& content);
// Its two halves, for a set of files published together (the report set): the temporary
// (registered while the returned object lives), then the rename.
std::unique_ptr<TempFile> write_temp(const std::string& path, const std::string& content);
void rename_into_place(const std::string& tmp, const std::string& path);
// A copy of `from` published at `to` the same way (temporary name, then rename).
void copy_file_atomic(const std::string& from, const std::string& to);

// Appends one line (a '\n' is added) to an append-only log: one write(2) on an O_APPEND file
// descriptor, then fsync, so that a crash leaves the log with or without the line, never half
// of it. The line must hold no '\n'. Throws std::runtime_error naming the file.
void append_line_durable(const std::string& path, const std::string& line);

}  // namespace wb
