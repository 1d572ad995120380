import Support

#if canImport(Glibc)
  import Glibc
#endif

/// A dedicated POSIX thread for the capture: its polls and libpcap reads block, and must not
/// hold a thread of Swift's cooperative pool (two cores: two blocked threads freeze everything).
enum CaptureThread {
  /// Starts `body` on a new thread; the thread for `pthread_join`, or why none started.
  static func start(_ body: @escaping () -> Void) throws(Errno) -> pthread_t {
    let box = Unmanaged.passRetained(ThreadBody(body))
    var created = pthread_t()
    let result = pthread_create(
      &created, nil,
      { argument in
        // The argument is always `box` (passed just below), never nil.
        guard let argument else { return nil }
        Unmanaged<ThreadBody>.fromOpaque(argument).takeRetainedValue().body()
        return nil
      }, box.toOpaque())
    guard result == 0 else {
      box.release()
      throw Errno(rawValue: result)
    }
    return created
  }

  /// The closure a new thread runs, passed through `pthread_create`'s one pointer.
  private final class ThreadBody {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
  }
}
