# No mailboxScope: nothing to apply. Show what -Remove would remove.
$sp = @(Find-ServicePrincipal) | Select-Object -First 1
$leftovers = @(Get-PortalAssignment $sp)
foreach ($assignment in $leftovers) {
    Write-Host ('-Remove would remove role assignment {0} ({1})' -f $assignment.Name, $assignment.Role)
}
if (@(Find-ManagementScope).Count -gt 0) {
    Write-Host ('-Remove would remove management scope {0}' -f $ScopeName)
} elseif ($leftovers.Count -eq 0) {
    Write-Host 'Nothing of this portal is left in Exchange RBAC for Applications.'
}
