# The group's distinguished name: MemberOfGroup needs it, and Get-Group -Identity does not take the Entra object
# id. Microsoft 365 groups are returned only with -RecipientTypeDetails GroupMailbox (Get-Recipient).
try {
    $groups = @(Get-Recipient -Filter "ExternalDirectoryObjectId -eq '@GROUP_ID@'" -RecipientTypeDetails GroupMailbox, MailUniversalSecurityGroup, MailUniversalDistributionGroup -ResultSize Unlimited)
} catch {
    if (-not (Test-NotFound $_)) { throw }
    $groups = @()
}
if ($groups.Count -ne 1) {
    throw ('Expected exactly one group with the Entra object id @GROUP_ID@, found {0}. The group must be a Microsoft 365 group, a mail-enabled security group or a distribution list: Exchange RBAC for Applications scopes only these, and a security group that is not mail-enabled is no Exchange recipient. Nothing was changed.' -f $groups.Count)
}
$filter = "MemberOfGroup -eq '{0}'" -f ([string]$groups[0].DistinguishedName -replace "'", "''")
