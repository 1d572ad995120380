import Alignment
import Testing

@Suite struct PairKinds {
  /// Pair logs and the HTML page store a kind as its index: it must be its place in `allCases`.
  @Test func indexIsThePlaceInAllCases() {
    for (place, kind) in PairKind.allCases.enumerated() {
      #expect(kind.index == place, "\(kind)")
    }
  }
}
