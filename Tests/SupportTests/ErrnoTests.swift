import Support
import Testing

#if canImport(Glibc)
  import Glibc
#endif

@Suite struct ErrnoTests {
  @Test func namedNumbersCarryTheCLibraryText() {
    #expect(Errno.noSuchFileOrDirectory.rawValue == ENOENT)
    #expect(Errno.noSuchFileOrDirectory.description == "No such file or directory")
    #expect(Errno.interrupted.description == "Interrupted system call")
    #expect(Errno(rawValue: EACCES) == .permissionDenied)
    #expect("\(Errno.noSpace)" == "No space left on device")
  }

  @Test func currentIsWhatTheFailedCallLeft() {
    #expect(access("/nonexistent/smcpair-support-test", F_OK) == -1)
    #expect(Errno.current == .noSuchFileOrDirectory)
  }

  @Test func openingAMissingFileThrowsItsErrno() {
    #expect(throws: Errno.noSuchFileOrDirectory) {
      try FileDescriptor.open("/nonexistent/smcpair-support-test", O_RDONLY)
    }
  }

  @Test func theFunnelRetriesInterruptedCallsAndThrowsOtherFailures() throws {
    var calls = 0
    let result = try retryingInterrupts { () -> Int32 in
      calls += 1
      if calls < 3 {
        errno = EINTR
        return -1
      }
      return 7
    }
    #expect(result == 7)
    #expect(calls == 3)

    calls = 0
    #expect(throws: Errno.ioError) {
      try retryingInterrupts { () -> Int32 in
        calls += 1
        errno = EIO
        return -1
      }
    }
    #expect(calls == 1)
  }

  @Test func fixedSizeCharacterArraysReadUpToTheirNul() {
    var info = utsname()
    #expect(uname(&info) == 0)
    #expect(String(cStringField: info.sysname) == "Linux")
    let full: (CChar, CChar, CChar) = (0x61, 0x62, 0x63)
    #expect(String(cStringField: full) == "abc")
    let cut: (CChar, CChar, CChar) = (0x61, 0, 0x63)
    #expect(String(cStringField: cut) == "a")
  }
}
