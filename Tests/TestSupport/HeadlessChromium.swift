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

  /// Opens `page` in a `width` × `height` frame of a driver page written next to it; once it
  /// loads, `script` runs with `f` (the frame) in scope and puts its JSON into
  /// `document.getElementById("r")`. Returns that text as `driverResult` does.
  public static func drive(
    _ page: String, width: Int, height: Int, windowSize: String, script: String
  ) throws -> (text: String?, run: ProcessResult) {
    let driver = (page as NSString).deletingLastPathComponent + "/driver.html"
    try """
    <!doctype html><html><body><pre id="r">pending</pre>
    <iframe id="f" src="file://\(page)" style="width:\(width)px;height:\(height)px"></iframe>
    <script>
    const f = document.getElementById("f");
    f.onload = () => {
    \(script)
    };
    </script></body></html>
    """.write(toFile: driver, atomically: true, encoding: .utf8)
    return try driverResult(driver, windowSize: windowSize)
  }
}
