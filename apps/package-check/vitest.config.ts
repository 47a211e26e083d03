import { ratesyncProject } from "../../vitest.shared.js";

export default ratesyncProject("package-check");
