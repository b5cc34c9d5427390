// Runs one real Node.js metadata client, unmodified, and prints what it returned as one JSON
// line: `node --require ./bind_source.cjs clients.cjs <scenario>`. The clients find imds through
// their own documented variables (AWS_EC2_METADATA_SERVICE_ENDPOINT, GCE_METADATA_HOST).
"use strict";

const scenarios = {
  // @aws-sdk/ec2-metadata-service: IMDSv2 token, then the paths a user asks for.
  async "ec2-metadata-service"() {
    const { MetadataService } = require("@aws-sdk/ec2-metadata-service");
    const service = new MetadataService({ retries: 0 });
    const token = await service.fetchMetadataToken();
    return {
      token_length: token.length,
      instance_id: await service.request("/latest/meta-data/instance-id", {}),
      listing: await service.request("/latest/meta-data/", {}),
      user_data: await service.request("/latest/user-data", {}),
    };
  },
  // @smithy/credential-provider-imds: the instance role's credentials, as the SDK's chain gets them.
  async "credential-provider-imds"() {
    const { fromInstanceMetadata } = require("@smithy/credential-provider-imds");
    const credentials = await fromInstanceMetadata({ timeout: 2000, maxRetries: 0 })();
    return {
      accessKeyId: credentials.accessKeyId,
      secretAccessKey: credentials.secretAccessKey,
      sessionToken: credentials.sessionToken,
      expiration: credentials.expiration ? credentials.expiration.toISOString() : null,
    };
  },
  // gcp-metadata: detection, then instance and project values.
  async "gcp-metadata"() {
    const gcp = require("gcp-metadata");
    const available = await gcp.isAvailable();
    if (!available) {
      return { available };
    }
    return {
      available,
      id: String(await gcp.instance("id")),
      hostname: await gcp.instance("hostname"),
      project_id: await gcp.project("project-id"),
      attributes: await gcp.instance({ property: "attributes/", params: { recursive: "true" } }),
    };
  },
  // gcp-metadata's detection alone (from an address no instance holds).
  async "gcp-metadata-detect"() {
    const gcp = require("gcp-metadata");
    return { available: await gcp.isAvailable() };
  },
};

const scenario = scenarios[process.argv[2]];
if (!scenario) {
  console.error(`unknown scenario ${process.argv[2]}; one of ${Object.keys(scenarios).join(", ")}`);
  process.exit(2);
}
scenario().then(
  (result) => console.log(JSON.stringify(result)),
  (error) => {
    console.log(JSON.stringify({ error: String(error && error.message ? error.message : error) }));
    process.exit(1);
  },
);
