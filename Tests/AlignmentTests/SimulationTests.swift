import Alignment
import Foundation
import SMCWire
import Testing

/// Ground truth by simulation: random offsets and skews, jitter, asymmetric delays, loss and
/// clock steps. The truth must lie inside the reported bounds every time, and no receive may
/// land before its send. The error statistics go to docs/alignment.md.
@Suite struct AlignmentSimulation {
  struct Generator {
    var state: UInt64
    mutating func next() -> Double {
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      return Double(state >> 11) / Double(1 << 53)
    }
  }

  /// One run: truth (offset, skew), network (base delay, jitter, asymmetry), loss.
  static func run(
    seed: UInt64, jitter: Double, skewRange: Double, asymmetry: Double, loss: Double, step: Double = 0
  ) -> (error: Double, inside: Bool, violations: Int, width: Double) {
    var random = Generator(state: seed)
    let offset = (random.next() * 20 - 10) * 1e9
    let skew = (random.next() * 2 - 1) * skewRange
    let reference: Int64 = 1_764_000_000_000_000_000
    var pairs: [PacketPair] = []
    let a = Endpoint(IPAddress(ipv4: 1), 1)
    let b = Endpoint(IPAddress(ipv4: 2), 2)
    for i in 0..<600 {
      if random.next() < loss { continue }
      let client = reference + Int64(i) * 100_000_000  // 60 s of traffic
      let stepNow = i >= 300 ? step : 0
      let truth = Double(client - reference) * (1 + skew * 1e-6) + Double(reference) + offset + stepNow
      let toServer = random.next() < 0.5
      let delay = 30_000 + random.next() * jitter + (toServer ? 0 : asymmetry)
      let side: (Int64, Int64) =
        toServer ? (client, Int64(truth + delay)) : (client + Int64(delay), Int64(truth))
      let c = SidePacket(
        frame: i, interface: 0, timeNanoseconds: side.0, source: toServer ? a : b,
        destination: toServer ? b : a,
        kind: .cdc)
      var s = c
      s.timeNanoseconds = side.1
      pairs.append(PacketPair(kind: .cdc, clientToServer: toServer, client: c, server: s))
    }
    // The offset refers to the start of the client capture (`reference`), also when loss
    // removed the first pairs.
    let alignment = Aligner.align(
      pairs: pairs, clientPackets: pairs.count, serverPackets: pairs.count, clientAddresses: [],
      reference: reference)
    #expect(alignment.model.referenceNanoseconds == reference)
    let model = alignment.model
    let inside = model.offsetLower <= offset + 1 && offset - 1 <= model.offsetUpper
    return (
      abs(model.offsetNanoseconds - offset), inside, alignment.causalityViolations,
      model.offsetUpper - model.offsetLower
    )
  }

  @Test func truthAlwaysInsideBoundsAndNoCausalityViolations() {
    var table = [
      "| jitter | skew range | asymmetry | loss | runs | median error | worst error | median bound width |",
      "|---|---|---|---|---|---|---|---|",
    ]
    for (jitter, skew, asymmetry, loss) in [
      (1_000.0, 0.0, 0.0, 0.0), (10_000.0, 10.0, 0.0, 0.0), (100_000.0, 100.0, 0.0, 0.0),
      (1_000_000.0, 100.0, 0.0, 0.1),
      (10_000.0, 100.0, 50_000.0, 0.0), (100_000.0, 50.0, 0.0, 0.5),
    ] {
      var errors: [Double] = []
      var widths: [Double] = []
      for seed in 1...40 {
        let result = Self.run(
          seed: UInt64(seed) * 7919, jitter: jitter, skewRange: skew, asymmetry: asymmetry, loss: loss)
        #expect(result.inside, "seed \(seed) jitter \(jitter) skew \(skew): truth outside bounds")
        #expect(result.violations == 0)
        errors.append(result.error)
        widths.append(result.width)
      }
      errors.sort()
      widths.sort()
      table.append(
        String(
          format: "| %.0f us | ±%.0f ppm | %.0f us | %.0f%% | 40 | %.1f us | %.1f us | %.1f us |",
          jitter / 1000, skew,
          asymmetry / 1000, loss * 100, errors[20] / 1000, errors[39] / 1000, widths[20] / 1000))
    }
    print("alignment accuracy (simulation):\n" + table.joined(separator: "\n"))
  }

  @Test func clockStepsAreFoundAndBothSidesStayInside() {
    for seed in 1...10 {
      let result = Self.run(
        seed: UInt64(seed), jitter: 10_000, skewRange: 20, asymmetry: 0, loss: 0, step: 50_000_000)
      #expect(result.violations == 0)
      #expect(result.inside)
    }
  }
}
