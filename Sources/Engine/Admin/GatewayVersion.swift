/// The gateway's version, as a replica reports it to its fleet (a rolling deploy shows both).
public enum GatewayVersion {
    public static let current = "0.2.0-dev"
}
