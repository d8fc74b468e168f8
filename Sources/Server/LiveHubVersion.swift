import CLibAV

public enum LiveHubVersion {
    public static let string = "0.1.0"

    /// `major.minor.micro` of a libav `*_version()` value (major << 16 | minor << 8 | micro).
    static func libav(_ packed: UInt32) -> String {
        "\(packed >> 16).\((packed >> 8) & 0xFF).\(packed & 0xFF)"
    }

    /// What `livehub --version` prints: LiveHub's version and the libav it runs with.
    public static var description: String {
        "LiveHub \(string) (libavformat \(libav(avformat_version())), libavcodec \(libav(avcodec_version())), libavutil \(libav(avutil_version())))"
    }
}
