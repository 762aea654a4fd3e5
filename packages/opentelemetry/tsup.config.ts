import { packageBuild } from "../../tsup.base";

// Neutral: the integration uses only the OpenTelemetry API, so it runs wherever core does.
export default packageBuild({ platform: "neutral", external: ["@opentelemetry/api"] });
