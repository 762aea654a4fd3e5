import { packageBuild } from "../../tsup.base";

export default packageBuild({ platform: "neutral", external: [] });
