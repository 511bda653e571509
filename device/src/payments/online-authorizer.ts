/**
 * Online authorization: the till's calls to the cloud, each under the
 * payment's idempotency key. They go through the CloudClient's `till` lane:
 * a short timeout per attempt and one quick retry with the same key (so a
 * retry can never charge twice), inside a circuit breaker that, after 3
 * failed calls in a row, leaves the cloud alone for 15 s: payments then go
 * straight to offline authorization instead of making each customer wait.
 */
import type { PaymentRequest, PaymentResponse, TopupIntentRequest, TopupIntentResponse } from "@paylane/protocol";
import type { CloudAnswer, CloudClient } from "../cloud/cloud-client.ts";

/**
 * `answered`: the cloud decided (approved or declined). `refused`: it
 * refused the request itself (4xx): nothing was charged, and offline would
 * not be right either. `unreachable`: the caller may authorize offline with
 * the same key.
 */
export type OnlineOutcome<R = PaymentResponse> = CloudAnswer<R>;

export class OnlineAuthorizer {
  readonly #cloud: CloudClient;

  constructor(cloud: CloudClient) {
    this.#cloud = cloud;
  }

  /** Asks the cloud to authorize a purchase (again, with the same key, on a retry). */
  authorize(request: PaymentRequest): Promise<OnlineOutcome> {
    return this.#cloud.call("authorizePayment", { body: request });
  }

  /**
   * Asks the cloud for the intent a top-up needs before any card is charged:
   * a journaled top-up credits the wallet only against it. Retried with the
   * same key like a payment; unreachable means no top-up right now.
   */
  topupIntent(request: TopupIntentRequest): Promise<OnlineOutcome<TopupIntentResponse>> {
    return this.#cloud.call("topupIntent", { body: request });
  }

  /**
   * For a payment a crash left unresolved: the answer its key already has,
   * or a void the cloud records under the key, so it is never charged later.
   * Never asks for a new decision: the member is gone.
   */
  settle(request: PaymentRequest): Promise<OnlineOutcome> {
    return this.#cloud.call("voidPayment", { body: request });
  }
}
