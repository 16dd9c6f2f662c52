# 1. The service principal pointer.
$sp = @(Find-ServicePrincipal) | Select-Object -First 1
if (-not $sp) {
    $sp = New-ServicePrincipal -AppId $AppId -ObjectId $ObjectId -DisplayName $DisplayName
    Write-Host ('created service principal pointer {0}' -f $ObjectId)
}

# 2. The mailboxes: the management scope's filter.
@FILTER@

# 3. The management scope.
$scope = @(Find-ManagementScope) | Select-Object -First 1
if (-not $scope) {
    New-ManagementScope -Name $ScopeName -RecipientRestrictionFilter $filter | Out-Null
    Write-Host ('created management scope {0}: {1}' -f $ScopeName, $filter)
} elseif ([string]$scope.RecipientFilter -ne $filter) {
    # Exchange may store a filter in a normalised form; setting the same filter again changes nothing.
    Set-ManagementScope -Identity $ScopeName -RecipientRestrictionFilter $filter
    Write-Host ('set management scope {0}: {1}' -f $ScopeName, $filter)
}

# 4. Reconcile the role assignments: remove this portal's that the configuration no longer wants, add the missing.
$existing = @(Get-PortalAssignment $sp)
foreach ($assignment in $existing) {
    if (-not $Wanted.Contains([string]$assignment.Name)) {
        Remove-PortalAssignment $assignment
    }
}
foreach ($name in @($Wanted.Keys)) {
    $found = @($existing | Where-Object { [string]$_.Name -eq $name })
    if ($found.Count -eq 0) {
        New-ManagementRoleAssignment -Name $name -App $ObjectId -Role $Wanted[$name] -CustomResourceScope $ScopeName | Out-Null
        Write-Host ('created role assignment {0} ({1})' -f $name, $Wanted[$name])
    }
}

# 5. What the app may do now (this test bypasses Exchange's permission cache).
if ($Mailbox) {
    Test-ServicePrincipalAuthorization -Identity $ObjectId -Resource $Mailbox | Format-Table
} else {
    Test-ServicePrincipalAuthorization -Identity $ObjectId | Format-Table
}
