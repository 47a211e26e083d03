import { ratesyncProject } from "../../vitest.shared.js";

export default ratesyncProject("postgres");
