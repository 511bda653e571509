/** The flags every sub-command that talks to the cloud's admin API takes. */
import type { Command } from "commander";

export function withCloudLogin(command: Command): Command {
  return command
    .option("--cloud-url <url>", "the cloud API (default $PAYLANE_CLOUD_URL or http://127.0.0.1:8080)")
    .option(
      "--token-file <file>",
      "a file holding an admin operator token (default $PAYLANE_TOKEN, else $PAYLANE_DATA/operator-token)",
    )
    .option("--ca <pem>", "a CA certificate to trust for a cloud on HTTPS with a private CA");
}
