import Foundation

/// Chromium without a screen, for the tests of timeline.html.
public enum HeadlessChromium {
  /// Runs chromium with `arguments` and a private profile per run (Chromium refuses a
  /// profile another instance holds).
  public static func run(_ arguments: [String]) throws -> ProcessResult {
    let profile = try TemporaryDirectory("smcpair-chromium")
    return try Tools.run(
      [
        try Tools.require("chromium"), "--headless", "--no-sandbox", "--disable-gpu",
        "--enable-logging=stderr",
        "--v=0", "--user-data-dir=\(profile.path)",
      ] + arguments)
  }

  /// Opens `driver` (a page that loads timeline.html in a frame, acts on it, and writes JSON
  /// into `<pre id="r">`) and returns that text, unescaped, with the run (its stderr says
  /// why when the text is missing).
  public static func driverResult(_ driver: String, windowSize: String) throws -> (
    text: String?, run: ProcessResult
  ) {
    let dom = try run([
      "--allow-file-access-from-files", "--virtual-time-budget=30000", "--window-size=\(windowSize)",
      "--dump-dom",
      "file://\(driver)",
    ])
    let text = dom.stdout.firstRange(of: "<pre id=\"r\">").map {
      String(dom.stdout[$0.upperBound...].prefix { $0 != "<" }).replacingOccurrences(of: "&quot;", with: "\"")
    }
    return (text, dom)
  }
}
