/// The configuration `switchyard serve --demo` (and `make demo`) serves: every simulated provider
/// shape, priced like the models they stand for so costs and budgets move; three tenants with keys,
/// limits and daily budgets (one small enough to run out while you watch); a cached route, exact and
/// semantic; and a provider that fails now and then, so its breaker opens and closes. Anonymous
/// callers still get through, so the README's curl examples work unchanged.
///
/// The tenants' keys are made up and local (the demo's own traffic uses them), never a credential.
public enum DemoConfig {
    public static let yaml = """
        server: { listen: "127.0.0.1:8080" }
        providers:
          sim: { kind: simulator }
          sim-claude: { kind: simulator, dialect: anthropic }
          sim-gemini: { kind: simulator, dialect: gemini }
          sim-local: { kind: simulator, dialect: ollama }
          # Fails 60% of its requests: three in a row open its breaker for 15 s, then a probe decides.
          flaky: { kind: simulator, breaker: { failures: 3, open_for: 15s, max_open_for: 30s } }
        prices:                      # USD per million tokens, as the models they stand for
          gpt-4o: { input: 2.5, cached_input: 1.25, output: 10 }
          gpt-4o-mini: { input: 0.15, cached_input: 0.075, output: 0.6 }
          gpt-4.1: { input: 2, cached_input: 0.5, output: 8 }
          "gpt-4.1:fault=500:fault-rate=0.6": { input: 2, cached_input: 0.5, output: 8 }
          claude-sonnet-4-5: { input: 3, output: 15 }
          gemini-2.5-flash: { input: 0.3, output: 2.5 }
          text-embedding-3-small: { input: 0.02, output: 0 }
        routes:
          gpt-4o-mini: { targets: [{ provider: sim, model: gpt-4o-mini }] }
          gpt-4o: { targets: [{ provider: sim, model: gpt-4o }] }
          claude-sonnet-4-5: { targets: [{ provider: sim-claude, model: claude-sonnet-4-5 }] }
          llama3.2: { targets: [{ provider: sim-local, model: llama3.2 }] }
          gemini-2.5-flash: { targets: [{ provider: sim-gemini, model: gemini-2.5-flash }] }
          # The flaky target first; its failures fail over to the steady one.
          gpt-4.1:
            targets:
              - { provider: flaky, model: "gpt-4.1:fault=500:fault-rate=0.6" }
              - { provider: sim, model: gpt-4.1, priority: 1 }
          # Answers kept 10 minutes: repeated questions are exact hits, reworded ones semantic hits.
          support:
            targets: [{ provider: sim, model: gpt-4o-mini }]
            cache:
              ttl: 10m
              always: true
              semantic: { embedder: { provider: sim, model: text-embedding-3-small } }
        tenants:
          acme:
            limits: { rpm: 600, concurrency: 8 }
            budget: { daily_usd: 0.5 }
            keys: { web: { key: "sk-sy-demoacme000000000000000000000000000000" } }
          globex:
            limits: { rpm: 300 }
            budget: { daily_usd: 0.25 }
            keys: { batch: { key: "sk-sy-demoglobex0000000000000000000000000000" } }
          initech:
            limits: { rpm: 120 }
            budget: { daily_usd: 0.01 }
            keys: { intern: { key: "sk-sy-demoinitech000000000000000000000000000" } }
        """
}
