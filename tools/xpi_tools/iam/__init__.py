"""IAM policies of the template: resolved from the translated template (template_policies), linted
against AWS's service authorization reference with parliament (lint, `xpi iam lint`)."""
