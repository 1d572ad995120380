import Support
import Testing

#if canImport(Glibc)
  import Glibc
#endif

@Suite struct SystemClockTests {
  @Test func theMonotonicClockNeverGoesBack() {
    var last = SystemClock.monotonicNanoseconds()
    var backwards = 0
    for _ in 0..<100_000 {
      let now = SystemClock.monotonicNanoseconds()
      if now < last { backwards += 1 }
      last = now
    }
    #expect(backwards == 0)
    #expect(last > 0)
  }

  @Test func theMonotonicClockMeasuresASleep() {
    let before = SystemClock.monotonicSeconds()
    usleep(20_000)
    let elapsed = SystemClock.monotonicSeconds() - before
    #expect(elapsed >= 0.020)
    #expect(elapsed < 5)
  }

  @Test func theRealtimeClockIsTheWallClock() {
    let seconds = SystemClock.realtimeNanoseconds() / 1_000_000_000
    let wall = Int64(time(nil))
    #expect(abs(seconds - wall) <= 1)
  }
}
