import SMCWire
import Testing

@testable import Alignment

@Suite struct ClockFitting {
  /// Pairs from a known truth: offset `o` ns, skew `k` ppm, one-way delays `d` ns (+ jitter).
  static func pairs(
    offset: Double, skewPPM: Double, delay: Double, jitter: Double, count: Int, span: Int64, seed: UInt64
  )
    -> [PairedTimes]
  {
    var state = seed
    func random() -> Double {
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      return Double(state >> 11) / Double(1 << 53)
    }
    let reference: Int64 = 1_764_000_000_000_000_000
    var out: [PairedTimes] = []
    for i in 0..<count {
      let client = reference + span * Int64(i) / Int64(max(1, count - 1))
      let truth = Double(client) + offset + skewPPM * 1e-6 * Double(client - reference)
      let toServer = i % 2 == 0
      let d = delay + random() * jitter
      // Client→server: sent at `client` (client clock), received d later (server clock).
      // Server→client: sent at server time `truth`, received on the client d later.
      if toServer {
        out.append(
          PairedTimes(clientToServer: true, clientNanoseconds: client, serverNanoseconds: Int64(truth + d)))
      } else {
        out.append(
          PairedTimes(
            clientToServer: false, clientNanoseconds: client + Int64(d), serverNanoseconds: Int64(truth)))
      }
    }
    return out
  }

  @Test(arguments: [(0.0, 0.0), (3.5e9, 0.0), (-10e9, 100.0), (10e9, -100.0), (-2e6, 37.0)])
  func truthInsideBounds(offset: Double, skew: Double) {
    let pairs = Self.pairs(
      offset: offset, skewPPM: skew, delay: 25_000, jitter: 10_000, count: 400, span: 60_000_000_000, seed: 7)
    let fit = ClockFitter.fit(pairs, reference: 1_764_000_000_000_000_000)
    #expect(fit.feasible)
    #expect(fit.verdict == .bounded)
    #expect(fit.model.offsetLower <= offset && offset <= fit.model.offsetUpper, "\(fit.model)")
    #expect(fit.model.skewLower <= skew && skew <= fit.model.skewUpper, "\(fit.model)")
    #expect(abs(fit.model.offsetNanoseconds - offset) < 30_000, "\(fit.model)")
  }
}

@Suite struct ClockFittingHarder {
  static let reference: Int64 = 1_764_000_000_000_000_000

  /// Asymmetric delays, heavy jitter, lost pairs in one direction: the truth stays inside.
  @Test func asymmetricJitterAndLoss() {
    var all = ClockFitting.pairs(
      offset: 1.25e9, skewPPM: -42, delay: 80_000, jitter: 400_000, count: 2000, span: 600_000_000_000,
      seed: 3)
    // Server→client delays much longer than client→server ones: shift those receives later.
    all = all.map { pair in
      var p = pair
      if !p.clientToServer { p.clientNanoseconds += 300_000 }
      return p
    }
    // Lose most of one direction.
    let pairs = all.enumerated().filter { $0.element.clientToServer || $0.offset % 10 == 1 }.map(\.element)
    let fit = ClockFitter.fit(pairs, reference: Self.reference)
    #expect(fit.feasible)
    #expect(fit.model.offsetLower <= 1.25e9 && 1.25e9 <= fit.model.offsetUpper, "\(fit.model)")
    #expect(fit.model.skewLower <= -42 && -42 <= fit.model.skewUpper)
    // Asymmetry is invisible from inside: the estimate may be off by half of it, never more
    // than the bounds.
    #expect(abs(fit.model.offsetNanoseconds - 1.25e9) <= (fit.model.offsetUpper - fit.model.offsetLower))
  }

  @Test func oneDirectionIsAHalfBound() {
    let pairs = ClockFitting.pairs(
      offset: 5e6, skewPPM: 0, delay: 30_000, jitter: 1000, count: 100, span: 1_000_000_000, seed: 1
    )
    .filter(\.clientToServer)
    let fit = ClockFitter.fit(pairs, reference: Self.reference)
    #expect(fit.verdict == .oneSided)
    #expect(fit.model.offsetLower == -.infinity)
    #expect(fit.model.offsetUpper >= 5e6)
    #expect(ClockFitter.fit([], reference: Self.reference).verdict == .none)
  }

  @Test func aClockStepSplitsIntoSegments() {
    let before = ClockFitting.pairs(
      offset: 2e6, skewPPM: 10, delay: 20_000, jitter: 5000, count: 300, span: 30_000_000_000, seed: 9)
    // At 31 s the server clock jumps forward by 40 ms.
    let after = ClockFitting.pairs(
      offset: 42e6, skewPPM: 10, delay: 20_000, jitter: 5000, count: 300, span: 30_000_000_000, seed: 11
    )
    .map { pair -> PairedTimes in
      var p = pair
      p.clientNanoseconds += 31_000_000_000
      p.serverNanoseconds += 31_000_000_000 + Int64(10e-6 * 31_000_000_000)
      return p
    }
    let pairs = (before + after).map { p in
      PacketPairForTest.make(p)
    }
    let alignment = Aligner.align(pairs: pairs, clientPackets: 600, serverPackets: 600, clientAddresses: [])
    #expect(alignment.segments.count == 2)
    #expect(alignment.causalityViolations == 0)
    #expect(alignment.warnings.contains { $0.contains("clock step") })
    let second = alignment.segments[1].model
    let truthAtReference = 42e6  // the offset model of the second stretch, at the common reference
    #expect(abs(second.offsetNanoseconds - truthAtReference) < 1e6, "\(second)")
  }
}

/// Builds PacketPairs around bare times (the aligner needs only times and direction).
enum PacketPairForTest {
  static func make(_ times: PairedTimes) -> PacketPair {
    let a = Endpoint(IPAddress(ipv4: 1), 1)
    let b = Endpoint(IPAddress(ipv4: 2), 2)
    let client = SidePacket(
      frame: 0, interface: 0, timeNanoseconds: times.clientNanoseconds, source: times.clientToServer ? a : b,
      destination: times.clientToServer ? b : a, kind: .tcp)
    var server = client
    server.timeNanoseconds = times.serverNanoseconds
    return PacketPair(kind: .tcp, clientToServer: times.clientToServer, client: client, server: server)
  }
}

/// The pairing's fingerprint table: FIFO per fingerprint, growth keeps every chain.
@Suite struct PairingChainTable {
  @Test func chainsAreFirstInFirstOutAndSurviveGrowth() {
    var table = FingerprintChains(minimumCapacity: 4)
    var next = [Int](repeating: -1, count: 3000)
    // 1000 fingerprints, three packets each, added interleaved so chains grow across resizes.
    for round in 0..<3 {
      for key in 0..<1000 {
        let index = round * 1000 + key
        if let previous = table.append(PairFingerprint.mix(UInt64(key)), index) { next[previous] = index }
      }
    }
    for key in 0..<1000 {
      var taken: [Int] = []
      while let first = table.takeFirst(PairFingerprint.mix(UInt64(key)), next: { next[$0] }) {
        taken.append(first)
      }
      #expect(taken == [key, 1000 + key, 2000 + key])
    }
    #expect(table.takeFirst(PairFingerprint.mix(5000), next: { next[$0] }) == nil)
    // An emptied chain takes new packets again.
    next[42] = -1
    if let previous = table.append(PairFingerprint.mix(7), 42) { next[previous] = 42 }
    #expect(table.takeFirst(PairFingerprint.mix(7), next: { next[$0] }) == 42)
  }

  @Test func fingerprintSeparatesDirectionAndKind() {
    let a = Endpoint(IPAddress("10.0.0.1")!, 40000)
    let b = Endpoint(IPAddress("10.0.0.2")!, 7000)
    let forward = PairFingerprint.of(a, b, kind: 1, content: 99)
    #expect(forward != PairFingerprint.of(b, a, kind: 1, content: 99))
    #expect(forward != PairFingerprint.of(a, b, kind: 2, content: 99))
    #expect(forward != PairFingerprint.of(a, b, kind: 1, content: 98))
    #expect(forward == PairFingerprint.of(a, b, kind: 1, content: 99))
  }
}
