#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// The one funnel for system calls that return -1 and set `errno`: an interrupted call (EINTR)
/// is run again, any other failure is thrown as its `Errno`.
///
/// Every read, write and wait in smcpair goes through here so that no caller forgets the retry
/// (a signal for the agent's clean-up, or SIGCHLD, must not turn into a failed write).
@inline(__always)
public func retryingInterrupts<Result: SignedInteger>(_ call: () -> Result) throws(Errno) -> Result {
  while true {
    let result = call()
    if result != -1 { return result }
    let error = Errno.current
    if error != .interrupted { throw error }
  }
}
