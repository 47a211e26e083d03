/**
 * `express4` is Express 4 installed under another name (an npm alias) so tests can run both
 * majors; Express 4's API is the one `@types/express` describes, less what 5 added.
 */
declare module "express4" {
  import express from "express";

  export default express;
}
