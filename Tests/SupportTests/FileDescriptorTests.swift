import Support
import Synchronization
import Testing

#if canImport(Glibc)
  import Glibc
#endif

@Suite(.serialized) struct FileDescriptorTests {
  /// 1 MiB of a pattern that shows a lost, repeated or reordered chunk.
  static let payload: [UInt8] = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 12) }

  @Test func aPipeCarriesEveryByteInOrder() throws {
    let pipe = try FileDescriptor.pipe()
    try pipe.write.writeAll("hello, ")
    try pipe.write.writeAll(Array("pipe".utf8))
    try pipe.write.close()
    let read = try pipe.read.readToEnd(chunk: 3)
    try pipe.read.close()
    #expect(String(decoding: read, as: UTF8.self) == "hello, pipe")
  }

  @Test func aShortWriteKeepsWhatWasWrittenAndReportsWhyItStopped() throws {
    let pipe = try FileDescriptor.pipe()
    defer {
      try? pipe.read.close()
      try? pipe.write.close()
    }
    // Non-blocking and nobody reading: the pipe takes what fits (a short write), then refuses.
    #expect(fcntl(pipe.write.rawValue, F_SETFL, O_NONBLOCK) == 0)
    #expect(throws: Errno.wouldBlock) {
      try pipe.write.writeAll(Self.payload)
    }
    try pipe.write.close()
    let written = try pipe.read.readToEnd()
    #expect(written.count > 0)
    #expect(written.count < Self.payload.count)
    #expect(written[...] == Self.payload[..<written.count])
  }

  @Test func writesInterruptedBySignalsAreContinued() throws {
    // A handler without SA_RESTART: a write blocked on a full pipe returns early (short) or
    // fails with EINTR when the signal arrives; writeAll must carry on either way.
    var action = sigaction()
    action.__sigaction_handler.sa_handler = { _ in }
    action.sa_flags = 0
    sigemptyset(&action.sa_mask)
    var previous = sigaction()
    #expect(sigaction(SIGUSR1, &action, &previous) == 0)
    defer { sigaction(SIGUSR1, &previous, nil) }

    let pipe = try FileDescriptor.pipe()
    var thread = pthread_t()
    let context = WriterContext(fd: pipe.write)
    let box = Unmanaged.passRetained(context)
    #expect(
      pthread_create(
        &thread, nil,
        { argument in
          guard let argument else { return nil }
          let context = Unmanaged<WriterContext>.fromOpaque(argument).takeRetainedValue()
          context.run()
          return nil
        }, box.toOpaque()) == 0)
    // Let the writer fill the pipe and block, then interrupt it a few times.
    usleep(50_000)
    for _ in 0..<5 {
      if let target = context.writer.withLock({ $0 }) { pthread_kill(target, SIGUSR1) }
      usleep(10_000)
    }
    let read = try pipe.read.readToEnd(chunk: 4096)
    pthread_join(thread, nil)
    try pipe.read.close()
    #expect(context.outcome.withLock { $0 } == .some(nil))
    #expect(read == Self.payload)
  }

  @Test func closingTwiceIsABadDescriptor() throws {
    let pipe = try FileDescriptor.pipe()
    try pipe.read.close()
    try pipe.write.close()
    #expect(throws: Errno.badFileDescriptor) { try pipe.write.close() }
  }

  @Test func theOldBooleanWriterStillWritesEverything() throws {
    let pipe = try FileDescriptor.pipe()
    let ok = "line\n".utf8.withContiguousStorageIfAvailable {
      writeAll(to: pipe.write.rawValue, UnsafeRawBufferPointer($0))
    }
    try pipe.write.close()
    #expect(ok == true)
    #expect(try pipe.read.readToEnd() == Array("line\n".utf8))
    try pipe.read.close()
  }
}

/// The writing thread of `writesInterruptedBySignalsAreContinued`: writes the payload, then
/// closes its end (so the reader sees the end), recording its thread and how it ended.
final class WriterContext: @unchecked Sendable {
  let fd: FileDescriptor
  /// The writing thread, once it runs.
  let writer = Mutex<pthread_t?>(nil)
  /// nil while writing; then `.some(nil)` for success or the error.
  let outcome = Mutex<Errno??>(nil)

  init(fd: FileDescriptor) { self.fd = fd }

  func run() {
    writer.withLock { $0 = pthread_self() }
    var failure: Errno?
    do {
      try fd.writeAll(FileDescriptorTests.payload)
    } catch {
      failure = error
    }
    try? fd.close()
    outcome.withLock { $0 = .some(failure) }
  }
}
